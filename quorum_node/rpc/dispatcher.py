"""The JSON-RPC 2.0 core: requests, batches, notifications and error mapping.

Transport-free: the HTTP and WebSocket servers hand it decoded bodies and send back
what it returns. Handlers are plain coroutines registered by name from one object per
namespace; they raise typed errors, which are mapped to JSON-RPC codes here only.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from quorum_node.chain.calls import CallError, CallReverted
from quorum_node.errors import InvalidTransactionRequest, QuorumNodeError
from quorum_node.privacy.params import InvalidPrivacyParams
from quorum_node.rpc.errors import (
    ExecutionReverted,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    ParseError,
    RpcError,
    ServerError,
)

logger = logging.getLogger(__name__)


@dataclass
class CallContext:
    """Who is calling: a WebSocket connection can hold subscriptions, HTTP cannot."""

    send_notification: Callable[[dict[str, Any]], Awaitable[None]] | None = None
    subscriptions: set[str] = field(default_factory=set)


Handler = Callable[[list[Any], CallContext], Awaitable[Any]]


def rpc_method(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a namespace method as the handler of JSON-RPC method ``name``."""

    def mark(function: Callable[..., Any]) -> Callable[..., Any]:
        function._rpc_name = name  # type: ignore[attr-defined]
        return function

    return mark


def _error_response(request_id: Any, error: RpcError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": error.to_json()}


def _as_rpc_error(exc: Exception) -> RpcError:
    if isinstance(exc, RpcError):
        return exc
    if isinstance(exc, CallReverted):
        return ExecutionReverted(exc.reason, exc.revert_data)
    if isinstance(exc, InvalidPrivacyParams | InvalidTransactionRequest):
        return InvalidParams(str(exc))
    if isinstance(exc, CallError | QuorumNodeError):
        return ServerError(str(exc))
    logger.exception("internal error while handling a request", exc_info=exc)
    return RpcError("internal error")


class Dispatcher:
    def __init__(self, max_batch_size: int = 10_000) -> None:
        self._methods: dict[str, Handler] = {}
        self._max_batch_size = max_batch_size

    def register(self, namespace: object) -> None:
        for attribute in dir(namespace):
            handler = getattr(namespace, attribute)
            name = getattr(handler, "_rpc_name", None)
            if name is not None:
                self._methods[name] = handler

    @property
    def method_names(self) -> list[str]:
        return sorted(self._methods)

    async def handle_body(self, body: bytes | str, context: CallContext) -> Any:
        """Answer a request body; None when nothing is to be sent (only notifications)."""
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            return _error_response(None, ParseError(f"parse error: {exc}"))
        if isinstance(payload, list):
            if not payload:
                return _error_response(None, InvalidRequest("empty batch"))
            if len(payload) > self._max_batch_size:
                return _error_response(
                    None, InvalidRequest(f"batch of {len(payload)} exceeds {self._max_batch_size}")
                )
            responses = await asyncio.gather(
                *(self.handle_request(item, context) for item in payload)
            )
            answered = [response for response in responses if response is not None]
            return answered or None
        return await self.handle_request(payload, context)

    async def handle_request(self, request: Any, context: CallContext) -> dict[str, Any] | None:
        if not isinstance(request, dict):
            return _error_response(None, InvalidRequest("request must be an object"))
        request_id = request.get("id")
        is_notification = "id" not in request
        if request_id is not None and not isinstance(request_id, str | int | float):
            return _error_response(None, InvalidRequest("id must be a string or a number"))
        if request.get("jsonrpc") != "2.0":
            return _error_response(request_id, InvalidRequest('"jsonrpc" must be "2.0"'))
        method = request.get("method")
        if not isinstance(method, str):
            return _error_response(request_id, InvalidRequest('"method" must be a string'))
        handler = self._methods.get(method)
        try:
            if handler is None:
                raise MethodNotFound(f"the method {method} does not exist/is not available")
            params = request.get("params", [])
            result = await handler(params, context)
        except Exception as exc:
            if is_notification:
                return None
            return _error_response(request_id, _as_rpc_error(exc))
        if is_notification:
            return None
        return {"jsonrpc": "2.0", "id": request_id, "result": result}
