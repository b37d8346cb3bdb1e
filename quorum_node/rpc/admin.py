"""The ``admin_`` namespace: who this node is and which peers it reaches."""

from __future__ import annotations

from typing import Any

from quorum_node.p2p.identity import Enode
from quorum_node.p2p.network import PeerNetwork
from quorum_node.rpc import params as p
from quorum_node.rpc.dispatcher import CallContext, rpc_method


class AdminNamespace:
    def __init__(self, network: PeerNetwork, self_enode: Enode, client_version: str) -> None:
        self._network = network
        self._self = self_enode
        self._client_version = client_version

    @rpc_method("admin_peers")
    async def peers(self, params: Any, context: CallContext) -> list[dict[str, Any]]:
        p.expect_params(params, 0, 0)
        return self._network.describe_peers()

    @rpc_method("admin_nodeInfo")
    async def node_info(self, params: Any, context: CallContext) -> dict[str, Any]:
        p.expect_params(params, 0, 0)
        return {
            "id": self._self.node_id,
            "enode": str(self._self),
            "name": self._client_version,
            "ip": self._self.host,
            "listenAddr": f"{self._self.host}:{self._self.p2p_port}",
            "ports": {"listener": self._self.p2p_port, "discovery": 0},
            "protocols": {"raft": {"raftport": self._self.raft_port}},
        }
