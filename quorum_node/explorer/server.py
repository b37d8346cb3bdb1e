"""The explorer's web application: aiohttp routes rendering Jinja2 templates from the view
models of :mod:`quorum_node.explorer.views`, plus the live feed of new heads.

Only GET routes exist; every page is rendered on the server, and the one script
(``static/explorer.js``) comes from the app itself, so the pages need no internet.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import jinja2
from aiohttp import web

from quorum_node.explorer.abi import AbiRegistry
from quorum_node.explorer.network import Participant
from quorum_node.explorer.rpc_client import HttpJsonRpc, JsonRpc, manager_upcheck
from quorum_node.explorer.search import BadSearch, SearchTarget, parse_search
from quorum_node.explorer.views import Explorer

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
EXPLORER_KEY = web.AppKey("explorer", Explorer)
SESSION_KEY = web.AppKey("session", aiohttp.ClientSession)
TEMPLATES_KEY = web.AppKey("templates", jinja2.Environment)
#: No script, style or font from anywhere but the app; no framing.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    environment = request.app[TEMPLATES_KEY]
    explorer = request.app[EXPLORER_KEY]
    context.setdefault("query", "")
    html = environment.get_template(template).render(
        participant_count=len(explorer.participants), **context
    )
    return web.Response(text=html, status=status, content_type="text/html")


def _message(request: web.Request, status: int, heading: str, message: str) -> web.Response:
    return _render(
        request,
        "message.html",
        status=status,
        heading=heading,
        message=message,
        query=request.query.get("q", ""),
    )


def _target(request: web.Request, kind: str) -> SearchTarget:
    """The path parameter parsed as the search box would, or 400."""
    target = parse_search(request.match_info["id"])
    if target.kind != kind:
        raise BadSearch(f"{request.match_info['id'][:80]!r} is not a {kind}")
    return target


async def network_page(request: web.Request) -> web.Response:
    explorer = request.app[EXPLORER_KEY]
    statuses, latest = await asyncio.gather(explorer.statuses(), explorer.latest())
    keys = {p.name: p.tm_public_key for p in explorer.participants}
    return _render(request, "network.html", statuses=statuses, latest=latest, keys=keys)


async def latest_fragment(request: web.Request) -> web.Response:
    latest = await request.app[EXPLORER_KEY].latest()
    return _render(request, "_latest.html", latest=latest)


async def block_page(request: web.Request) -> web.Response:
    target = _target(request, "block")
    block = await request.app[EXPLORER_KEY].block(int(target.value))
    if block is None:
        return _message(
            request, 404, "Block not found", f"No participant's node has block {target.value} yet."
        )
    return _render(request, "block.html", block=block)


async def transaction_page(request: web.Request) -> web.Response:
    target = _target(request, "hash")
    explorer = request.app[EXPLORER_KEY]
    tx = await explorer.transaction(target.value)
    if tx is None:
        number = await explorer.block_number_of_hash(target.value)
        if number is not None:
            raise web.HTTPFound(f"/block/{number}")
        return _message(
            request,
            404,
            "Not found",
            f"No participant's node knows a transaction or block {target.value}.",
        )
    return _render(request, "transaction.html", tx=tx)


async def address_page(request: web.Request) -> web.Response:
    target = _target(request, "address")
    contract = await request.app[EXPLORER_KEY].contract(target.value)
    return _render(request, "contract.html", contract=contract)


async def groups_page(request: web.Request) -> web.Response:
    explorer = request.app[EXPLORER_KEY]
    groups = await explorer.groups()
    return _render(
        request, "groups.html", groups=groups, names=[p.name for p in explorer.participants]
    )


async def search(request: web.Request) -> web.Response:
    target = parse_search(request.query.get("q", ""))
    raise web.HTTPFound(target.path)


async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: each new head of the first node whose WebSocket subscription
    works, as ``event: head``. The browser's EventSource reconnects by itself."""
    explorer = request.app[EXPLORER_KEY]
    session = request.app[SESSION_KEY]
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    await response.write(b": subscribed\n\n")
    for participant in explorer.participants:
        if not participant.ws_url:
            continue
        try:
            await _forward_heads(session, participant, response)
        except ConnectionResetError:
            break  # the browser went away (aiohttp's reset error is also a ClientError)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.info("newHeads from %s ended: %s", participant.name, exc)
    return response


async def _forward_heads(
    session: aiohttp.ClientSession, participant: Participant, response: web.StreamResponse
) -> None:
    async with session.ws_connect(participant.ws_url, heartbeat=20) as socket:
        await socket.send_json(
            {"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]}
        )
        async for message in socket:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            body = json.loads(message.data)
            if isinstance(body, dict) and body.get("id") == 1 and "result" in body:
                ready = json.dumps({"source": participant.name})
                await response.write(f"event: ready\ndata: {ready}\n\n".encode())
                continue
            head = body.get("params", {}).get("result") if isinstance(body, dict) else None
            if not isinstance(head, dict) or "number" not in head:
                continue
            event = {
                "number": int(head["number"], 16),
                "hash": head.get("hash"),
                "source": participant.name,
            }
            await response.write(f"event: head\ndata: {json.dumps(event)}\n\n".encode())


@web.middleware
async def error_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bad input is a 400 page naming the fault; anything unexpected a 500 page with no
    detail (the detail goes to the log). Security headers on every answer."""
    try:
        response = await handler(request)
    except BadSearch as exc:
        response = _message(request, 400, "Cannot search for that", str(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _message(request, exc.status, exc.reason, exc.text or exc.reason)
    except Exception:
        log.exception("explorer page %s failed", request.path)
        response = _message(
            request, 500, "Explorer error", "The page could not be built; see the explorer's log."
        )
    response.headers.update(SECURITY_HEADERS)
    return response


def build_app(
    participants: list[Participant],
    abis: AbiRegistry,
    clients: dict[str, JsonRpc] | None = None,
) -> web.Application:
    """The application. Without ``clients`` it makes HTTP JSON-RPC clients (and an
    ``aiohttp`` client session) when it starts; tests pass fakes."""
    app = web.Application(middlewares=[error_pages])
    app[TEMPLATES_KEY] = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
    )

    async def session_context(app: web.Application) -> Any:
        session = aiohttp.ClientSession()
        app[SESSION_KEY] = session
        by_name: dict[str, JsonRpc] = (
            clients
            if clients is not None
            else {p.name: HttpJsonRpc(session, p.rpc_url) for p in participants}
        )

        async def upcheck(participant: Participant) -> str:
            return await manager_upcheck(session, participant.tm_url)

        app[EXPLORER_KEY] = Explorer(participants, by_name, abis, upcheck)
        yield
        await session.close()

    app.cleanup_ctx.append(session_context)
    app.router.add_get("/", network_page)
    app.router.add_get("/fragment/latest", latest_fragment)
    app.router.add_get("/events", events)
    app.router.add_get("/block/{id}", block_page)
    app.router.add_get("/tx/{id}", transaction_page)
    app.router.add_get("/address/{id}", address_page)
    app.router.add_get("/groups", groups_page)
    app.router.add_get("/search", search)
    app.router.add_static("/static/", HERE / "static")
    return app
