"""A stand-in transaction manager for tests: it forwards every Q2T request to a real
manager and, in the payloads it hands back, replaces one byte string by another.

Put in front of one member's manager (``tm_url`` in that node's ``node.json``), it makes
that member's node execute a different payload than the other members for the same hash:
the divergence the group audit must catch. Nothing in production code knows of it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from typing import Any

import aiohttp
from aiohttp import web


class TamperingManager:
    def __init__(self, target: str, find: bytes, replace: bytes) -> None:
        self.target = target.rstrip("/")
        self.find = find
        self.replace = replace
        self.tampered = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> TamperingManager:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the tampering manager did not start")
        return self

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with aiohttp.ClientSession() as session:
            app = web.Application(client_max_size=64 * 1024 * 1024)

            async def forward(request: web.Request) -> web.Response:
                return await self._forward(session, request)

            app.router.add_route("*", "/{tail:.*}", forward)
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # noqa: SLF001
            self._ready.set()
            await self._stop.wait()
            await runner.cleanup()

    async def _forward(self, session: aiohttp.ClientSession, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {
            k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")
        }
        async with session.request(
            request.method, self.target + request.rel_url.path_qs, data=body, headers=headers
        ) as answer:
            content = await answer.read()
            status = answer.status
            content_type = answer.headers.get("Content-Type", "application/octet-stream")
        if status == 200 and content_type.startswith("application/json"):
            content = self._tamper(content)
        return web.Response(body=content, status=status, headers={"Content-Type": content_type})

    def _tamper(self, content: bytes) -> bytes:
        try:
            document = json.loads(content)
        except ValueError:
            return content
        found = document.get("transactions") if isinstance(document, dict) else None
        items: list[Any] = found if isinstance(found, list) else [document]
        changed = False
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("payload"), str):
                payload = base64.b64decode(item["payload"])
                if self.find in payload:
                    item["payload"] = base64.b64encode(
                        payload.replace(self.find, self.replace)
                    ).decode()
                    changed = True
                    self.tampered += 1
        return json.dumps(document).encode() if changed else content
