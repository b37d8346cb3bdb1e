"""What both HTTP edges share: error mapping, body limits, body reading, hash parsing.

Handlers raise ``TxManagerError`` subclasses; ``error_middleware`` turns them
into ``{"error": message}`` with the class's HTTP status. Anything unexpected
is logged with its traceback and answered 500 without details, and the server
keeps serving.

Every request body is capped (``body_limit_middleware``): a declared
Content-Length over the cap is refused before the handler runs, and a body
streamed without one is cut off by aiohttp's ``client_max_size`` when a
handler reads it (handlers read bodies only through ``read_json`` and
``read_binary``). Either way the answer is 413 with the limit in the message,
and the connection is closed rather than drained.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from tx_manager.errors import (
    BadRequest,
    RateLimited,
    Recovering,
    RequestTooLarge,
    TxManagerError,
    UnsupportedMediaType,
)
from tx_manager.payload import HASH_SIZE

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_body(status: int, message: str, **fields: object) -> web.Response:
    return web.json_response({**fields, "error": message}, status=status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except TxManagerError as exc:
        if isinstance(exc, Recovering):  # expected while recovering: no warning each time
            return error_body(exc.http_status, exc.message, recovering=True)
        if exc.http_status >= 500:
            log.warning("%s %s failed: %s", request.method, request.path, exc.message)
        response = error_body(exc.http_status, exc.message)
        if isinstance(exc, RateLimited):
            response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
        if isinstance(exc, RequestTooLarge):
            response.force_close()  # do not read on through the rest of a huge body
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_body(exc.status, exc.reason)
    except Exception:
        log.exception("unexpected error in %s %s", request.method, request.path)
        return error_body(500, "internal error (see the manager's log)")


def body_limit_middleware(max_body_bytes: int) -> Middleware:
    """Refuse (413) any request body over ``max_body_bytes``, on every route."""

    def too_large(size: str) -> RequestTooLarge:
        return RequestTooLarge(
            f"request body of {size} exceeds the limit of {max_body_bytes} bytes (max_body_bytes)"
        )

    @web.middleware
    async def limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        length = request.content_length
        if length is not None and length > max_body_bytes:
            raise too_large(f"{length} bytes")
        try:
            return await handler(request)
        except web.HTTPRequestEntityTooLarge as exc:
            raise too_large("more bytes") from exc

    return limit


async def read_json(request: web.Request) -> Any:
    if request.content_type != "application/json":
        raise UnsupportedMediaType(
            f"expected Content-Type application/json, got {request.content_type or 'none'}"
        )
    body = await request.read()
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("body is not valid JSON") from exc


async def read_binary(request: web.Request) -> bytes:
    if request.content_type != "application/octet-stream":
        raise UnsupportedMediaType(
            f"expected Content-Type application/octet-stream, got {request.content_type or 'none'}"
        )
    return await request.read()


def parse_hash(text: str, what: str = "hash") -> bytes:
    """A 64-byte hash given as standard or URL-safe base64, or as hex."""
    candidates: list[Callable[[], bytes]] = []
    stripped = text.strip()
    if len(stripped) == 2 * HASH_SIZE:
        candidates.append(lambda: bytes.fromhex(stripped))
    candidates.append(lambda: base64.b64decode(stripped, validate=True))
    padded = stripped + "=" * (-len(stripped) % 4)
    candidates.append(lambda: base64.urlsafe_b64decode(padded.encode("ascii")))
    for decode in candidates:
        try:
            value = decode()
        except (binascii.Error, ValueError):
            continue
        if len(value) == HASH_SIZE:
            return value
    raise BadRequest(f"{what} must be a 64-byte hash in base64, URL-safe base64 or hex")


def text_response(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/plain")


def json_response(body: dict[str, Any] | list[Any], status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
    )
