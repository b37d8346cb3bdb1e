"""The JSON-RPC 2.0 core: requests, batches, notifications and error mapping.

Transport-free: the HTTP and WebSocket servers hand it request bodies and send back the
JSON text it returns. Handlers are plain coroutines registered by name from one object
per namespace; they raise typed errors, which are mapped to JSON-RPC codes here only.

One registry serves every transport; each call says, in its ``CallContext``, which
namespaces its transport enables (``--http-api``, ``--ws-api``). A method of a disabled
namespace answers exactly as a method that does not exist (-32601), as in geth.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from quorum_node.chain.calls import CallError, CallReverted
from quorum_node.config import DEFAULT_MAX_BATCH_RESPONSE_BYTES, DEFAULT_MAX_BATCH_SIZE
from quorum_node.errors import InvalidTransactionRequest, QuorumNodeError
from quorum_node.privacy.params import InvalidPrivacyParams
from quorum_node.rpc.errors import (
    ExecutionReverted,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    ParseError,
    ResponseTooLarge,
    RpcError,
    ServerError,
)

logger = logging.getLogger(__name__)


@dataclass
class CallContext:
    """Who is calling: the namespaces their transport enables (none unless given: a
    transport that forgets to say serves nothing), and for a WebSocket connection, how to
    push notifications and which subscriptions it holds (HTTP holds none).

    ``send_notification`` queues a message without waiting and says whether it was
    queued (False once the connection is closing or was dropped as too slow).
    """

    namespaces: frozenset[str] = frozenset()
    send_notification: Callable[[dict[str, Any]], bool] | None = None
    subscriptions: set[str] = field(default_factory=set)


Handler = Callable[[list[Any], CallContext], Awaitable[Any]]


def rpc_method(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a namespace method as the handler of JSON-RPC method ``name``."""

    def mark(function: Callable[..., Any]) -> Callable[..., Any]:
        function._rpc_name = name  # type: ignore[attr-defined]
        return function

    return mark


def namespace_of(method: str) -> str:
    """The text before the first ``_``; GoQuorum's ``quorumExtension_*`` is ``quorum``."""
    namespace = method.split("_", 1)[0]
    return "quorum" if namespace == "quorumExtension" else namespace


def _dumps(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"))


def _first_call_id(batch: list[Any]) -> Any:
    """geth answers a batch that is too large with one error carrying the id of the
    batch's first call, the best it can do to tie the error to the request."""
    for item in batch:
        if isinstance(item, dict) and isinstance(item.get("id"), str | int | float):
            return item["id"]
    return None


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
    def __init__(
        self,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        max_batch_response_bytes: int = DEFAULT_MAX_BATCH_RESPONSE_BYTES,
    ) -> None:
        self._methods: dict[str, Handler] = {}
        self._max_batch_size = max_batch_size
        self._max_batch_response_bytes = max_batch_response_bytes

    def register(self, namespace: object) -> None:
        for attribute in dir(namespace):
            handler = getattr(namespace, attribute)
            name = getattr(handler, "_rpc_name", None)
            if name is not None:
                self._methods[name] = handler

    @property
    def method_names(self) -> list[str]:
        return sorted(self._methods)

    async def answer(self, body: bytes | str, context: CallContext) -> str | None:
        """The JSON text answering a request body; None when nothing is to be sent (the
        body held only notifications)."""
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            return _dumps(_error_response(None, ParseError(f"parse error: {exc}")))
        if not isinstance(payload, list):
            response = await self.handle_request(payload, context)
            return None if response is None else _dumps(response)
        if not payload:
            return _dumps(_error_response(None, InvalidRequest("empty batch")))
        if len(payload) > self._max_batch_size:
            error = InvalidRequest(f"batch too large (more than {self._max_batch_size} items)")
            return _dumps([_error_response(_first_call_id(payload), error)])
        responses = await asyncio.gather(*(self.handle_request(item, context) for item in payload))
        return self._batch_text([response for response in responses if response is not None])

    def _batch_text(self, responses: list[dict[str, Any]]) -> str | None:
        """Join a batch's answers, each serialized once. As geth does, once the answers
        add up to more than the response limit, that answer and every later one become
        a -32003 "response too large" error."""
        if not responses:
            return None
        parts: list[str] = []
        size = 0
        too_large = False
        for response in responses:
            text = _dumps(response)
            if not too_large:
                size += len(text)
                too_large = size > self._max_batch_response_bytes
            if too_large:
                text = _dumps(_error_response(response.get("id"), ResponseTooLarge()))
            parts.append(text)
        return "[" + ",".join(parts) + "]"

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
        if namespace_of(method) not in context.namespaces:
            handler = None
        try:
            if handler is None:
                raise MethodNotFound(f"the method {method} does not exist/is not available")
            params = request.get("params", [])
            result = await handler(params, context)
        except Exception as exc:
            error = _as_rpc_error(exc)  # logs an unexpected error, answered or not
            return None if is_notification else _error_response(request_id, error)
        if is_notification:
            return None
        return {"jsonrpc": "2.0", "id": request_id, "result": result}
