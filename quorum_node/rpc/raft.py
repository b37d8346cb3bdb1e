"""The ``raft_`` namespace, as GoQuorum's Raft mode names it."""

from __future__ import annotations

from typing import Any

from quorum_node.consensus.raft import RaftEngine
from quorum_node.errors import ConfigError
from quorum_node.rpc import params as p
from quorum_node.rpc.dispatcher import CallContext, rpc_method
from quorum_node.rpc.errors import InvalidParams, ServerError


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

    @rpc_method("raft_addPeer")
    async def add_peer(self, params: Any, context: CallContext) -> int:
        (enode_raw,) = p.expect_params(params, 1, 1)
        if not isinstance(enode_raw, str):
            raise InvalidParams("enode: expected an enode URL with ?raftport=N")
        try:
            return await self._engine.add_peer(enode_raw)
        except ConfigError as exc:
            raise ServerError(str(exc)) from None

    @rpc_method("raft_removePeer")
    async def remove_peer(self, params: Any, context: CallContext) -> None:
        (raft_id_raw,) = p.expect_params(params, 1, 1)
        if not isinstance(raft_id_raw, int) or isinstance(raft_id_raw, bool):
            raise InvalidParams("raftId: expected a number")
        try:
            await self._engine.remove_peer(raft_id_raw)
        except ConfigError as exc:
            raise ServerError(str(exc)) from None
        return None
