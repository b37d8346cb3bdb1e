"""The Q2T API (Tessera's paths): for the local node and local apps only.

Bound to 127.0.0.1 or a Unix socket by default: it decrypts for whoever asks.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Middleware

from quorum_shared.version import VERSION
from tx_manager.api.common import (
    body_limit_middleware,
    error_middleware,
    json_response,
    parse_hash,
    read_json,
    text_response,
)
from tx_manager.commitment_messages import (
    MAX_COMMITMENTS,
    CommitRequest,
    CommitResponse,
    IdentityResponse,
)
from tx_manager.disclosure_messages import DiscloseRequest, SignDisclosureRequest
from tx_manager.errors import BadRequest
from tx_manager.messages import (
    API_VERSION,
    KeysResponse,
    ReceiveManyRequest,
    ReceiveManyResponse,
    SendRequest,
    SendSignedRequest,
    StoreRawRequest,
    parse_key,
)
from tx_manager.payload import b64encode
from tx_manager.service import TransactionManager

SERVICE_KEY = web.AppKey("service", TransactionManager)


def _service(request: web.Request) -> TransactionManager:
    return request.app[SERVICE_KEY]


def _optional_key(value: str | None, what: str) -> bytes | None:
    if value is None or value == "":
        return None
    return parse_key(value.replace(" ", "+"), what)  # '+' arrives as ' ' from a raw query


async def upcheck(request: web.Request) -> web.Response:
    return text_response("I'm up!")


async def version(request: web.Request) -> web.Response:
    """The quorum-py release, as Tessera's ``/version`` gives its build's version."""
    return text_response(VERSION)


async def api_versions(request: web.Request) -> web.Response:
    """The Q2T message versions this manager speaks, as Tessera's ``/version/api``."""
    return json_response([API_VERSION])


async def send(request: web.Request) -> web.Response:
    result = await _service(request).send(SendRequest.from_json(await read_json(request)))
    response = json_response(result.to_json(), status=201)
    response.headers["Location"] = f"transaction/{b64encode(result.key)}"
    return response


async def store_raw(request: web.Request) -> web.Response:
    body = StoreRawRequest.from_json(await read_json(request))
    return json_response((await _service(request).store_raw(body)).to_json())


async def send_signed(request: web.Request) -> web.Response:
    body = SendSignedRequest.from_json(await read_json(request))
    result = await _service(request).send_signed(body)
    response = json_response(result.to_json(), status=201)
    response.headers["Location"] = f"transaction/{b64encode(result.key)}"
    return response


async def receive(request: web.Request) -> web.Response:
    tx_hash = parse_hash(request.match_info["hash"])
    to = _optional_key(request.query.get("to"), "to")
    is_raw = request.query.get("isRaw", "false").lower() == "true"
    result = await _service(request).receive(tx_hash, to, raw=is_raw)
    return json_response(result.to_json())


async def receive_many(request: web.Request) -> web.Response:
    body = ReceiveManyRequest.from_json(await read_json(request))
    found = await _service(request).receive_many(body.keys, body.to)
    return json_response(ReceiveManyResponse(tuple(found)).to_json())


async def receive_raw(request: web.Request) -> web.Response:
    key_header = request.headers.get("c11n-key")
    if key_header is None:
        raise BadRequest("header c11n-key is missing")
    tx_hash = parse_hash(key_header, "c11n-key")
    to = _optional_key(request.headers.get("c11n-to"), "c11n-to")
    result = await _service(request).receive(tx_hash, to)
    return web.Response(body=result.payload, content_type="application/octet-stream")


async def participants(request: web.Request) -> web.Response:
    parties = await _service(request).participants(parse_hash(request.match_info["hash"]))
    return text_response(",".join(b64encode(k) for k in parties))


async def is_sender(request: web.Request) -> web.Response:
    sent = await _service(request).is_sender(parse_hash(request.match_info["hash"]))
    return text_response("true" if sent else "false")


async def delete(request: web.Request) -> web.Response:
    await _service(request).delete(parse_hash(request.match_info["hash"]))
    return web.Response(status=204)


async def keys(request: web.Request) -> web.Response:
    return json_response(KeysResponse(_service(request).enclave.public_keys).to_json())


async def admin_recover(request: web.Request) -> web.Response:
    received = await _service(request).recover()
    return json_response({"received": received})


def _query_int(request: web.Request, name: str, default: int) -> int:
    value = request.query.get(name)
    if value is None or value == "":
        return default
    if not value.isdigit() or len(value) > 20:
        raise BadRequest(f"{name} must be a non-negative integer")
    return int(value)


async def commit(request: web.Request) -> web.Response:
    body = CommitRequest.from_json(await read_json(request))
    signed = await _service(request).commitments.commit(body.commitments)
    return json_response(CommitResponse(tuple(signed)).to_json())


async def list_commitments(request: web.Request) -> web.Response:
    after = _query_int(request, "after", 0)
    limit = _query_int(request, "limit", MAX_COMMITMENTS)
    wait_ms = _query_int(request, "waitMs", 0)
    page = await _service(request).commitments.page(after, limit, wait_ms / 1000)
    return json_response(page.to_json())


async def identity(request: web.Request) -> web.Response:
    identities = _service(request).commitments.identities()
    return json_response(IdentityResponse(identities).to_json())


async def disclose(request: web.Request) -> web.Response:
    body = DiscloseRequest.from_json(await read_json(request))
    return json_response((await _service(request).disclose(body)).to_json())


async def sign_disclosure(request: web.Request) -> web.Response:
    body = SignDisclosureRequest.from_json(await read_json(request))
    return json_response((await _service(request).sign_disclosure(body)).to_json())


async def recovery(request: web.Request) -> web.Response:
    """Whether a recovery is announced or running, and what it has received so far."""
    service = _service(request)
    return json_response({"recovering": service.recovering, "received": service.recovery_received})


def build_q2t_app(
    service: TransactionManager, max_body_bytes: int, *, observe: Middleware | None = None
) -> web.Application:
    """``observe``: an outermost middleware that sees every request and its answer
    (``tx_manager.metrics``)."""
    middlewares: list[Middleware] = [error_middleware, body_limit_middleware(max_body_bytes)]
    if observe is not None:
        middlewares.insert(0, observe)
    app = web.Application(client_max_size=max_body_bytes, middlewares=middlewares)
    app[SERVICE_KEY] = service
    app.router.add_get("/upcheck", upcheck)
    app.router.add_get("/version", version)
    app.router.add_get("/version/api", api_versions)
    app.router.add_post("/send", send)
    app.router.add_post("/storeraw", store_raw)
    app.router.add_post("/sendsignedtx", send_signed)
    app.router.add_get("/receiveraw", receive_raw)
    app.router.add_get("/transaction/{hash}", receive)
    app.router.add_post("/transactions", receive_many)
    app.router.add_delete("/transaction/{hash}", delete)
    app.router.add_get("/transaction/{hash}/participants", participants)
    app.router.add_get("/transaction/{hash}/isSender", is_sender)
    app.router.add_get("/keys", keys)
    app.router.add_get("/partyinfo/keys", keys)
    app.router.add_post("/admin/recover", admin_recover)
    app.router.add_post("/commitments", commit)
    app.router.add_get("/commitments", list_commitments)
    app.router.add_get("/identity", identity)
    app.router.add_get("/recovery", recovery)
    app.router.add_post("/disclose", disclose)
    app.router.add_post("/disclosures/sign", sign_disclosure)
    return app
