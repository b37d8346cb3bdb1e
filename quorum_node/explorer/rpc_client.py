"""A read-only JSON-RPC client: the explorer's only way to a node.

Every call goes through :data:`READ_METHODS`; anything else is refused before a request
is made, so the explorer cannot send a transaction, unlock an account or change a node.
"""

from __future__ import annotations

import itertools
from typing import Any, Protocol

import aiohttp

#: The methods the explorer may call: reads only.
READ_METHODS = frozenset(
    {
        "eth_blockNumber",
        "eth_chainId",
        "eth_getBlockByNumber",
        "eth_getBlockByHash",
        "eth_getTransactionByHash",
        "eth_getTransactionReceipt",
        "eth_getCode",
        "eth_call",
        "eth_storageRoot",
        "eth_getQuorumPayload",
        "eth_getContractPrivacyMetadata",
        "quorum_auditStatus",
        "net_peerCount",
        "raft_role",
    }
)


class ExplorerError(Exception):
    """Root of the explorer's errors."""


class NotReadOnly(ExplorerError):
    """A call to a method outside :data:`READ_METHODS`."""

    def __init__(self, method: str) -> None:
        super().__init__(f"the explorer is read-only: {method} is not a read method")
        self.method = method


class RpcError(ExplorerError):
    """The node answered with a JSON-RPC error, or could not be reached."""

    def __init__(self, method: str, message: str) -> None:
        super().__init__(f"{method}: {message}")
        self.method = method
        self.message = message


class JsonRpc(Protocol):
    """What the view models need of a node: one read call at a time."""

    async def call(self, method: str, params: list[Any]) -> Any: ...


class HttpJsonRpc:
    """JSON-RPC over HTTP with a shared ``aiohttp`` session and a per-call timeout."""

    def __init__(self, session: aiohttp.ClientSession, url: str, timeout: float = 5.0) -> None:
        self._session = session
        self._url = url
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._ids = itertools.count(1)

    async def call(self, method: str, params: list[Any]) -> Any:
        if method not in READ_METHODS:
            raise NotReadOnly(method)
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        try:
            async with self._session.post(self._url, json=body, timeout=self._timeout) as reply:
                answer = await reply.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise RpcError(method, f"node unreachable ({type(exc).__name__})") from exc
        if not isinstance(answer, dict):
            raise RpcError(method, "malformed answer")
        if "error" in answer:
            error = answer["error"]
            message = error.get("message", "error") if isinstance(error, dict) else str(error)
            raise RpcError(method, str(message))
        return answer.get("result")


async def manager_upcheck(session: aiohttp.ClientSession, tm_url: str) -> str:
    """``up`` when the manager answers ``GET /upcheck`` with 200, else why not."""
    try:
        async with session.get(
            tm_url.rstrip("/") + "/upcheck", timeout=aiohttp.ClientTimeout(total=3)
        ) as reply:
            return "up" if reply.status == 200 else f"HTTP {reply.status}"
    except (aiohttp.ClientError, TimeoutError) as exc:
        return f"down ({type(exc).__name__})"
