"""The P2P API (Tessera's paths): between managers, on its own port, optionally mutual TLS.

Nothing here decrypts for the caller: pushes are verified and stored, resends
go back to the URL that proved it holds the key, and a validation challenge
only opens values sealed under the separate challenge key (see ``enclave``).

Anyone who can reach this port can call it, so ``/partyinfo``,
``/partyinfo/validate`` and ``/resend`` are rate-limited per caller address
(429 with ``Retry-After``), and every body is capped (413).
"""

from __future__ import annotations

import logging
import math
import time

from aiohttp import web

from tx_manager.api.common import (
    Handler,
    Middleware,
    body_limit_middleware,
    error_body,
    error_middleware,
    json_response,
    parse_hash,
    read_binary,
    read_json,
    text_response,
)
from tx_manager.commitment_messages import CommitmentPush, CommitmentPushResult
from tx_manager.config import LimitsConfig
from tx_manager.discovery import Discovery
from tx_manager.errors import RateLimited
from tx_manager.messages import (
    EnvelopeBatch,
    KeysResponse,
    PartyInfo,
    ResendRequest,
    ValidationRequest,
)
from tx_manager.payload import b64encode, decode_envelope
from tx_manager.ratelimit import RateLimit, TokenBuckets
from tx_manager.service import TransactionManager
from tx_manager.tls import peer_fingerprint

log = logging.getLogger(__name__)

_LOG_REFUSALS_EVERY = 60.0

SERVICE_KEY = web.AppKey("service", TransactionManager)
DISCOVERY_KEY = web.AppKey("discovery", Discovery)


def _service(request: web.Request) -> TransactionManager:
    return request.app[SERVICE_KEY]


async def upcheck(request: web.Request) -> web.Response:
    return text_response("I'm up!")


async def push(request: web.Request) -> web.Response:
    envelope = decode_envelope(await read_binary(request))
    claimed = request.headers.get("c11n-key")
    claimed_hash = None if claimed is None else parse_hash(claimed, "c11n-key")
    (tx_hash,) = await _service(request).accept_push([envelope], claimed_hash)
    return text_response(b64encode(tx_hash), status=201)


async def push_batch(request: web.Request) -> web.Response:
    batch = EnvelopeBatch.from_bytes(await read_binary(request))
    hashes = await _service(request).accept_push(list(batch.envelopes))
    return json_response({"keys": [b64encode(h) for h in hashes]}, status=201)


async def get_partyinfo(request: web.Request) -> web.Response:
    return json_response(request.app[DISCOVERY_KEY].registry.snapshot().to_json())


async def partyinfo_keys(request: web.Request) -> web.Response:
    return json_response(KeysResponse(_service(request).enclave.public_keys).to_json())


async def post_partyinfo(request: web.Request) -> web.Response:
    discovery = request.app[DISCOVERY_KEY]
    await discovery.merge(PartyInfo.from_json(await read_json(request)))
    return json_response(discovery.registry.snapshot().to_json())


async def validate(request: web.Request) -> web.Response:
    challenge = ValidationRequest.from_json(await read_json(request))
    value = request.app[DISCOVERY_KEY].answer_challenge(challenge)
    return json_response({"value": b64encode(value)})


async def resend(request: web.Request) -> web.Response:
    body = ResendRequest.from_json(await read_json(request))
    service = _service(request)
    if body.type == "INDIVIDUAL":
        envelope = await service.resend_individual(body)
        return web.Response(body=envelope.to_bytes(), content_type="application/octet-stream")
    return json_response({"pushed": await service.resend_all(body.public_key)})


async def push_commitments(request: web.Request) -> web.Response:
    body = CommitmentPush.from_json(await read_json(request))
    stored = await _service(request).commitments.accept(body)
    return json_response(CommitmentPushResult(stored).to_json())


def rate_limit_middleware(limits: LimitsConfig) -> Middleware:
    """Token buckets per caller address for the endpoints that cost work or memory."""
    partyinfo = TokenBuckets(RateLimit(limits.partyinfo_rate, limits.partyinfo_burst))
    resend = TokenBuckets(RateLimit(limits.resend_rate, limits.resend_burst))
    limited = {"/partyinfo": partyinfo, "/partyinfo/validate": partyinfo, "/resend": resend}
    last_logged: dict[str, float] = {}

    @web.middleware
    async def limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        buckets = limited.get(request.path)
        if buckets is not None:
            caller = request.remote or "unknown"
            wait = buckets.acquire(caller)
            if wait > 0:
                now = time.monotonic()
                if now - last_logged.get(request.path, -_LOG_REFUSALS_EVERY) >= _LOG_REFUSALS_EVERY:
                    last_logged[request.path] = now
                    log.warning(
                        "rate limit: refused %s from %s (%d refused so far on this endpoint)",
                        request.path,
                        caller,
                        buckets.refused,
                    )
                raise RateLimited(
                    f"too many requests to {request.path} from {caller} (limit "
                    f"{buckets.limit.rate:g}/s, burst {buckets.limit.burst:g}); retry after "
                    f"{max(1, math.ceil(wait))} s",
                    wait,
                )
        return await handler(request)

    return limit


def fingerprint_middleware(allowed: frozenset[str]) -> Middleware:
    """Refuse (403) any request whose TLS client certificate is not on the allow-list."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        transport = request.transport
        ssl_object = None if transport is None else transport.get_extra_info("ssl_object")
        if peer_fingerprint(ssl_object) not in allowed:
            return error_body(403, "client certificate is not on the allow-list")
        return await handler(request)

    return check


def build_p2p_app(
    service: TransactionManager,
    discovery: Discovery,
    max_body_bytes: int,
    allowed_fingerprints: frozenset[str] | None = None,
    limits: LimitsConfig | None = None,
    *,
    observe: Middleware | None = None,
) -> web.Application:
    """``observe``: an outermost middleware that sees every request and its answer."""
    middlewares: list[Middleware] = [
        error_middleware,
        rate_limit_middleware(limits or LimitsConfig()),
        body_limit_middleware(max_body_bytes),
    ]
    if allowed_fingerprints is not None:
        middlewares.insert(0, fingerprint_middleware(allowed_fingerprints))
    if observe is not None:
        middlewares.insert(0, observe)
    app = web.Application(client_max_size=max_body_bytes, middlewares=middlewares)
    app[SERVICE_KEY] = service
    app[DISCOVERY_KEY] = discovery
    app.router.add_get("/upcheck", upcheck)
    app.router.add_post("/push", push)
    app.router.add_post("/pushBatch", push_batch)
    app.router.add_get("/partyinfo", get_partyinfo)
    app.router.add_post("/partyinfo", post_partyinfo)
    app.router.add_post("/partyinfo/validate", validate)
    app.router.add_get("/partyinfo/keys", partyinfo_keys)
    app.router.add_post("/resend", resend)
    app.router.add_post("/commitments/push", push_commitments)
    return app
