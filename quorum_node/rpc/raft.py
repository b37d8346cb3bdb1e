"""The ``raft_`` namespace, as GoQuorum's Raft mode names it."""

from __future__ import annotations

from typing import Any

from quorum_node.consensus.raft import RaftEngine
from quorum_node.rpc import params as p
from quorum_node.rpc.dispatcher import CallContext, rpc_method
from quorum_node.rpc.errors import ServerError


class RaftNamespace:
    def __init__(self, engine: RaftEngine) -> None:
        self._engine = engine

    @rpc_method("raft_role")
    async def role(self, params: Any, context: CallContext) -> str:
        p.expect_params(params, 0, 0)
        return self._engine.role()

    @rpc_method("raft_leader")
    async def leader(self, params: Any, context: CallContext) -> str:
        p.expect_params(params, 0, 0)
        leader = self._engine.leader_member()
        if leader is None:
            raise ServerError("no leader is currently elected")
        return leader.enode.node_id

    @rpc_method("raft_cluster")
    async def cluster(self, params: Any, context: CallContext) -> list[dict[str, Any]]:
        p.expect_params(params, 0, 0)
        return self._engine.cluster()
