"""The ``web3_`` namespace."""

from __future__ import annotations

from typing import Any

from eth_utils import keccak

from quorum_node.rpc import params as p
from quorum_node.rpc.dispatcher import CallContext, rpc_method


class Web3Namespace:
    def __init__(self, client_version: str) -> None:
        self._client_version = client_version

    @rpc_method("web3_clientVersion")
    async def client_version(self, params: Any, context: CallContext) -> str:
        p.expect_params(params, 0, 0)
        return self._client_version

    @rpc_method("web3_sha3")
    async def sha3(self, params: Any, context: CallContext) -> str:
        (raw,) = p.expect_params(params, 1, 1)
        return "0x" + keccak(p.data(raw, "data")).hex()
