"""The manager's Prometheus metrics, in a registry of its own.

Requests are counted and timed by an aiohttp middleware on both APIs, labelled by
API (``q2t``, ``p2p``) and by route (``/transaction/{hash}``, never the hash
itself, so the label set stays small). Everything else is read when scraped from
state the manager keeps anyway: the store's size, the peer table, the push
counters of ``PeerClient``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tx_manager.partyinfo import PartyRegistry
from tx_manager.peer_client import PeerClient

#: From a cached read (well under a millisecond) to a send waiting on a slow peer.
REQUEST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


def route_label(request: web.Request) -> str:
    """The route's pattern (``/transaction/{hash}``); ``unmatched`` for a 404 path."""
    info = request.match_info
    route = info.route if info is not None else None
    resource = route.resource if route is not None else None
    if resource is None:
        return "unmatched"
    return resource.canonical


class ManagerMetrics:
    """The registry, the request metrics, and the collector of the manager's state."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "tm_requests",
            "HTTP requests answered, by API, route and status code",
            ("api", "endpoint", "status"),
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "tm_request_seconds",
            "Time to answer an HTTP request, by API and route",
            ("api", "endpoint"),
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.store_bytes = 0

    def middleware(self, api: str) -> Middleware:
        """Counts and times every request of ``api``; put it outermost, so that error
        answers made by the inner middlewares are counted with their status."""

        @web.middleware
        async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
            started = time.perf_counter()
            status = 500
            try:
                response = await handler(request)
                status = response.status
                return response
            except web.HTTPException as exc:
                status = exc.status
                raise
            finally:
                endpoint = route_label(request)
                self.request_seconds.labels(api, endpoint).observe(time.perf_counter() - started)
                self.requests.labels(api, endpoint, str(status)).inc()

        return observe

    def watch(
        self,
        parties: PartyRegistry,
        peers: PeerClient,
        store_bytes: Callable[[], int],
    ) -> None:
        """Collect the peer table, the push counters and the store size when scraped."""
        self.registry.register(_StateCollector(parties, peers, store_bytes))


class _StateCollector(Collector):
    def __init__(
        self, parties: PartyRegistry, peers: PeerClient, store_bytes: Callable[[], int]
    ) -> None:
        self._parties = parties
        self._peers = peers
        self._store_bytes = store_bytes

    def describe(self) -> Iterable[Metric]:
        return []  # values only exist once the manager runs; no fixed description

    def collect(self) -> Iterable[Metric]:
        yield GaugeMetricFamily(
            "tm_peers", "Peer managers known (configured and discovered)", len(self._parties.peers)
        )
        yield GaugeMetricFamily(
            "tm_store_bytes", "Size of the manager's store in bytes", self._store_bytes()
        )
        yield CounterMetricFamily(
            "tm_pushes", "Push requests sent to peer managers", self._peers.pushes
        )
        yield CounterMetricFamily(
            "tm_pushed_envelopes",
            "Envelopes carried by push requests",
            self._peers.pushed_envelopes,
        )
        yield CounterMetricFamily(
            "tm_push_failures", "Push requests that failed", self._peers.push_failures
        )
