"""Serving one process's Prometheus registry on ``GET /metrics``, on a port of its own.

Both the node and the manager build their own ``CollectorRegistry`` (never the global
default one, so that a test can run several in one process) and hand it here. The
port is separate from JSON-RPC and Q2T so that a scraper can be given it without
being given either API, and it binds to loopback unless told otherwise.
"""

from __future__ import annotations

import errno
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

BeforeScrape = Callable[[], Awaitable[None]]


class MetricsServerError(Exception):
    """The metrics port could not be opened (in use, no such address)."""


class MetricsServer:
    """``GET /metrics`` in the Prometheus text format; ``before_scrape`` may refresh
    values that need I/O (a database's size) off the event loop first."""

    def __init__(
        self,
        registry: CollectorRegistry,
        host: str = "127.0.0.1",
        port: int = 0,
        before_scrape: BeforeScrape | None = None,
    ) -> None:
        self.registry = registry
        self.host = host
        self.port = port
        self._before_scrape = before_scrape
        self._runner: web.AppRunner | None = None
        self.url: str | None = None

    async def _metrics(self, request: web.Request) -> web.Response:
        if self._before_scrape is not None:
            await self._before_scrape()
        body = generate_latest(self.registry)
        response = web.Response(body=body)
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def start(self) -> str:
        """Listen; the URL of ``/metrics`` (with the port the OS chose for port 0)."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            reason = "is already in use" if exc.errno == errno.EADDRINUSE else f"failed: {exc}"
            raise MetricsServerError(f"metrics address {self.host}:{self.port} {reason}") from exc
        self._runner = runner
        port = runner.addresses[-1][1]
        # S104: recognises a wildcard bind to print a reachable URL; binds nothing.
        host = self.host if self.host not in ("0.0.0.0", "::", "") else "127.0.0.1"  # noqa: S104
        host = f"[{host}]" if ":" in host else host
        self.url = f"http://{host}:{port}/metrics"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
