"""Development helpers that test tools expect (``evm_mine``, as ganache and hardhat name it)."""

from __future__ import annotations

from typing import Any

from quorum_node.consensus.base import ConsensusEngine
from quorum_node.rpc import params as p
from quorum_node.rpc.dispatcher import CallContext, rpc_method
from quorum_node.rpc.errors import ServerError


class EvmNamespace:
    def __init__(self, engine: ConsensusEngine) -> None:
        self._engine = engine

    @rpc_method("evm_mine")
    async def mine(self, params: Any, context: CallContext) -> str:
        p.expect_params(params, 0, 1)
        committed = await self._engine.seal_now()
        if committed is None:
            raise ServerError("this node does not make blocks")
        return "0x0"
