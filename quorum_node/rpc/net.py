"""The ``net_`` namespace."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from quorum_node.rpc import params as p
from quorum_node.rpc.dispatcher import CallContext, rpc_method


class NetNamespace:
    def __init__(self, chain_id: int, peer_count: Callable[[], int] = lambda: 0) -> None:
        self._version = str(chain_id)
        self._peer_count = peer_count

    @rpc_method("net_version")
    async def version(self, params: Any, context: CallContext) -> str:
        p.expect_params(params, 0, 0)
        return self._version

    @rpc_method("net_listening")
    async def listening(self, params: Any, context: CallContext) -> bool:
        p.expect_params(params, 0, 0)
        return True

    @rpc_method("net_peerCount")
    async def peer_count(self, params: Any, context: CallContext) -> str:
        p.expect_params(params, 0, 0)
        return hex(self._peer_count())
