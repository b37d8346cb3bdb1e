"""HTTP and WebSocket transports for the dispatcher (aiohttp).

HTTP port: POST a JSON-RPC body to ``/`` with a JSON Content-Type, or upgrade to
WebSocket there. WebSocket port: WebSocket upgrades only. Before anything else, every
request's Host header must pass ``--http-vhosts``; browsers' requests then meet the
CORS rules (``--http-corsdomain``) and, for WebSocket handshakes, ``--ws-origins``
(see ``access`` for why). HTTP calls are served with the ``--http-api`` namespaces,
WebSocket calls with the ``--ws-api`` ones.

Limits: bodies and WebSocket messages above ``max_body_bytes`` are refused (413 over
HTTP, before parsing); batches as the dispatcher caps them; each WebSocket connection
has a bounded outgoing queue (``outbox``) and at most ``MAX_CALLS_PER_CONNECTION``
calls running at once (further messages wait unread, which slows the sender down).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, hdrs, web

from quorum_node.config import RpcConfig
from quorum_node.rpc.access import content_type_is_json, host_allowed, origin_allowed
from quorum_node.rpc.dispatcher import CallContext, Dispatcher
from quorum_node.rpc.outbox import Outbox

logger = logging.getLogger(__name__)

MAX_CALLS_PER_CONNECTION = 100
#: How long a stalled reader gets to take the close frame before its socket is cut.
SLOW_READER_CLOSE_SECONDS = 1.0
SLOW_READER_REASON = b"reading too slowly: outgoing queue full"
_TOO_LARGE = (
    '{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"request body too large"}}'
)
_NOT_JSON = "invalid content type, only application/json is supported\n"


def _is_upgrade(request: web.Request) -> bool:
    return request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"


class RpcServer:
    def __init__(
        self,
        dispatcher: Dispatcher,
        config: RpcConfig,
        on_disconnect: Callable[[CallContext], None] | None = None,
    ) -> None:
        self._dispatcher = dispatcher
        self._config = config
        self._on_disconnect = on_disconnect
        self._runners: list[web.AppRunner] = []
        self._sockets: set[web.WebSocketResponse] = set()
        self.http_port: int | None = None
        self.ws_port: int | None = None

    def _make_app(self, serves_http: bool) -> web.Application:
        vhosts = self._config.http_vhosts

        @web.middleware
        async def check_host(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            if not host_allowed(request.headers.get(hdrs.HOST), vhosts):
                return web.Response(status=403, text="invalid host specified\n")
            return await handler(request)

        app = web.Application(client_max_size=self._config.max_body_bytes, middlewares=[check_host])
        if serves_http:
            app.router.add_post("/", self._handle_http)
            app.router.add_route(hdrs.METH_OPTIONS, "/", self._handle_preflight)
            app.router.add_get("/", self._handle_http_get)
        else:
            app.router.add_get("/", self._handle_ws_port_get)
        return app

    async def start(self) -> None:
        self.http_port = await self._listen(self._config.http_port, serves_http=True)
        if self._config.ws_port is not None:
            self.ws_port = await self._listen(self._config.ws_port, serves_http=False)

    async def _listen(self, port: int, serves_http: bool) -> int:
        runner = web.AppRunner(self._make_app(serves_http), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self._config.host, port, reuse_address=True)
        await site.start()
        self._runners.append(runner)
        server = site._server  # noqa: SLF001 - the only way to learn the port picked for 0
        sockets = getattr(server, "sockets", None) or []
        return int(sockets[0].getsockname()[1]) if sockets else port

    async def stop(self) -> None:
        # Open WebSockets first, with "going away": aiohttp's cleanup would otherwise wait
        # up to a minute for each connected client (an explorer, a dApp) to hang up.
        for socket in list(self._sockets):
            with contextlib.suppress(TimeoutError, ConnectionError, RuntimeError):
                await asyncio.wait_for(
                    socket.close(code=WSCloseCode.GOING_AWAY, message=b"node shutting down"),
                    SLOW_READER_CLOSE_SECONDS,
                )
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()

    # --- HTTP ----------------------------------------------------------------------

    def _cors_headers(self, request: web.Request) -> dict[str, str]:
        """``Access-Control-Allow-Origin`` for an allowed browser origin, else nothing."""
        origin = request.headers.get(hdrs.ORIGIN)
        allowed = self._config.http_corsdomain
        if origin is None or not allowed or not origin_allowed(origin, allowed):
            return {}
        return {
            hdrs.ACCESS_CONTROL_ALLOW_ORIGIN: "*" if "*" in allowed else origin,
            hdrs.VARY: "Origin",
        }

    async def _handle_http(self, request: web.Request) -> web.StreamResponse:
        if not content_type_is_json(request.headers.get(hdrs.CONTENT_TYPE)):
            return web.Response(status=415, text=_NOT_JSON)
        cors = self._cors_headers(request)
        too_large = web.Response(
            status=413, text=_TOO_LARGE, content_type="application/json", headers=cors
        )
        length = request.content_length
        if length is not None and length > self._config.max_body_bytes:
            return too_large
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return too_large
        context = CallContext(namespaces=self._config.http_api)
        answer = await self._dispatcher.answer(body, context)
        return web.Response(text=answer or "", content_type="application/json", headers=cors)

    async def _handle_preflight(self, request: web.Request) -> web.StreamResponse:
        """A browser asks before a cross-origin JSON POST: answer only allowed origins."""
        if request.headers.get(hdrs.ORIGIN) is None:
            return web.Response(status=204, headers={hdrs.ALLOW: "GET, POST, OPTIONS"})
        cors = self._cors_headers(request)
        if not cors:
            return web.Response(status=403, text="origin not allowed (see --http-corsdomain)\n")
        requested = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_HEADERS, "Content-Type")
        cors.update(
            {
                hdrs.ACCESS_CONTROL_ALLOW_METHODS: "POST, GET",
                hdrs.ACCESS_CONTROL_ALLOW_HEADERS: requested,
                hdrs.ACCESS_CONTROL_MAX_AGE: "600",
            }
        )
        return web.Response(status=204, headers=cors)

    async def _handle_http_get(self, request: web.Request) -> web.StreamResponse:
        if not _is_upgrade(request):
            return web.Response(status=405, text="send JSON-RPC as POST, or upgrade to WebSocket\n")
        return await self._serve_websocket(request)

    async def _handle_ws_port_get(self, request: web.Request) -> web.StreamResponse:
        if not _is_upgrade(request):
            return web.Response(status=400, text="this port serves WebSocket upgrades only\n")
        return await self._serve_websocket(request)

    # --- WebSocket -------------------------------------------------------------------

    async def _serve_websocket(self, request: web.Request) -> web.StreamResponse:
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is not None and not origin_allowed(origin, self._config.ws_origins):
            logger.info("refused a WebSocket handshake from origin %r (see --ws-origins)", origin)
            return web.Response(status=403, text="origin not allowed (see --ws-origins)\n")
        socket = web.WebSocketResponse(max_msg_size=self._config.max_body_bytes, heartbeat=30)
        await socket.prepare(request)
        closing: list[asyncio.Task[None]] = []

        def on_overflow(waiting: int) -> None:
            logger.info(
                "closing the WebSocket connection of %s: it reads too slowly "
                "(%d bytes waiting to be sent, limit %d)",
                request.remote,
                waiting,
                self._config.ws_max_queued_bytes,
            )
            closing.append(asyncio.create_task(self._close_slow_reader(request, socket, outbox)))

        outbox = Outbox(socket.send_str, self._config.ws_max_queued_bytes, on_overflow)
        outbox.start()
        context = CallContext(
            namespaces=self._config.ws_api,
            send_notification=lambda message: not outbox.closed and outbox.put(_dumps(message)),
        )
        self._sockets.add(socket)
        try:
            await self._read_calls(socket, context, outbox)
        finally:
            self._sockets.discard(socket)
            if self._on_disconnect is not None:
                self._on_disconnect(context)  # first: nothing may keep its subscriptions
            await outbox.close()
            for task in closing:
                await task
        return socket

    async def _read_calls(
        self, socket: web.WebSocketResponse, context: CallContext, outbox: Outbox
    ) -> None:
        """Answer each message in its own task, at most ``MAX_CALLS_PER_CONNECTION`` at
        once; answers go through the outbox, in the order they are ready."""
        slots = asyncio.Semaphore(MAX_CALLS_PER_CONNECTION)
        running: set[asyncio.Task[None]] = set()

        async def answer(text: str) -> None:
            try:
                response = await self._dispatcher.answer(text, context)
                if response is not None:
                    outbox.put(response)
            finally:
                slots.release()

        try:
            async for message in socket:
                if message.type == WSMsgType.TEXT:
                    text = message.data
                elif message.type == WSMsgType.BINARY:
                    text = message.data.decode("utf-8", "replace")
                elif message.type == WSMsgType.ERROR:
                    break
                else:
                    continue
                await slots.acquire()
                task = asyncio.create_task(answer(text))
                running.add(task)
                task.add_done_callback(running.discard)
        finally:
            for task in running:
                task.cancel()

    async def _close_slow_reader(
        self, request: web.Request, socket: web.WebSocketResponse, outbox: Outbox
    ) -> None:
        """Send a close frame (1008, with the reason) if the client's side still takes
        one, then cut the connection: a stalled reader would never finish the handshake."""
        await outbox.close()
        with contextlib.suppress(TimeoutError, ConnectionError, RuntimeError):
            await asyncio.wait_for(
                socket.close(code=WSCloseCode.POLICY_VIOLATION, message=SLOW_READER_REASON),
                SLOW_READER_CLOSE_SECONDS,
            )
        if request.transport is not None:
            request.transport.abort()


def _dumps(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"))
