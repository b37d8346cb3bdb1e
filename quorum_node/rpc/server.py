"""HTTP and WebSocket transports for the dispatcher (aiohttp).

HTTP: POST a JSON-RPC body to ``/``. WebSocket: connect to the WebSocket port (or upgrade
on the HTTP port) and send JSON-RPC messages; subscription notifications arrive on the
same socket. Bodies above the configured limit are refused with 413 before parsing.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import WSMsgType, web

from quorum_node.config import RpcConfig
from quorum_node.rpc.dispatcher import CallContext, Dispatcher

logger = logging.getLogger(__name__)


def _dumps(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"))


class RpcServer:
    def __init__(
        self, dispatcher: Dispatcher, config: RpcConfig, on_disconnect: Any = None
    ) -> None:
        self._dispatcher = dispatcher
        self._config = config
        self._on_disconnect = on_disconnect
        self._runners: list[web.AppRunner] = []
        self.http_port: int | None = None
        self.ws_port: int | None = None

    def _make_app(self) -> web.Application:
        app = web.Application(client_max_size=self._config.max_body_bytes)
        app.router.add_post("/", self._handle_http)
        app.router.add_get("/", self._handle_get)
        return app

    async def start(self) -> None:
        self.http_port = await self._listen(self._config.http_port)
        if self._config.ws_port is not None:
            self.ws_port = await self._listen(self._config.ws_port)

    async def _listen(self, port: int) -> int:
        runner = web.AppRunner(self._make_app(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self._config.host, port, reuse_address=True)
        await site.start()
        self._runners.append(runner)
        server = site._server  # noqa: SLF001 - the only way to learn the port picked for 0
        sockets = getattr(server, "sockets", None) or []
        return int(sockets[0].getsockname()[1]) if sockets else port

    async def stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()

    async def _handle_http(self, request: web.Request) -> web.StreamResponse:
        if (
            request.content_length is not None
            and request.content_length > self._config.max_body_bytes
        ):
            return web.json_response(
                {
                    "jsonrpc": "2.0",
                    "id": None,
                    "error": {"code": -32600, "message": "request body too large"},
                },
                status=413,
            )
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return web.json_response(
                {
                    "jsonrpc": "2.0",
                    "id": None,
                    "error": {"code": -32600, "message": "request body too large"},
                },
                status=413,
            )
        response = await self._dispatcher.handle_body(body, CallContext())
        if response is None:
            return web.Response(status=200, text="", content_type="application/json")
        return web.Response(text=_dumps(response), content_type="application/json")

    async def _handle_get(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return web.Response(status=405, text="send JSON-RPC as POST, or upgrade to WebSocket\n")
        socket = web.WebSocketResponse(max_msg_size=self._config.max_body_bytes, heartbeat=30)
        await socket.prepare(request)
        send_lock = asyncio.Lock()

        async def send(payload: Any) -> None:
            if socket.closed:
                return
            async with send_lock:
                await socket.send_str(_dumps(payload))

        context = CallContext(send_notification=send)
        pending: set[asyncio.Task[None]] = set()

        async def answer(message_text: str) -> None:
            response = await self._dispatcher.handle_body(message_text, context)
            if response is not None:
                await send(response)

        try:
            async for message in socket:
                if message.type == WSMsgType.TEXT:
                    task = asyncio.create_task(answer(message.data))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                elif message.type == WSMsgType.BINARY:
                    task = asyncio.create_task(answer(message.data.decode("utf-8", "replace")))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                elif message.type == WSMsgType.ERROR:
                    break
        finally:
            for task in pending:
                task.cancel()
            if self._on_disconnect is not None:
                self._on_disconnect(context)
        return socket
