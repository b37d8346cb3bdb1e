"""The manager's /metrics: collectors in process, then real managers after a send."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.tx_manager.conftest import ManagerFactory, http, wait_until
from tx_manager.config import TlsConfig
from tx_manager.metrics import ManagerMetrics
from tx_manager.partyinfo import PartyRegistry
from tx_manager.peer_client import PeerClient


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a /metrics text: (name, sorted labels) -> value."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    return sum(
        v
        for (n, ls), v in samples(text).items()
        if n == name and all((k, labels[k]) in ls for k in labels)
    )


async def test_two_registries_in_one_process_and_the_request_middleware() -> None:
    first, second = ManagerMetrics(), ManagerMetrics()  # no clash: not the global registry

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(middlewares=[first.middleware("q2t")])
    app.router.add_get("/transaction/{hash}", ok)
    async with TestClient(TestServer(app)) as client:
        for path in ("/transaction/abc", "/transaction/def", "/nowhere"):
            await (await client.get(path)).read()
    peers = PeerClient(TlsConfig(), 5.0)
    peers.pushes, peers.pushed_envelopes, peers.push_failures = 3, 7, 1
    first.watch(PartyRegistry((b"\x01" * 32,), ("http://peer:1",)), peers, lambda: 4096)
    text = generate_latest(first.registry).decode()
    assert value(text, "tm_requests_total", endpoint="/transaction/{hash}", status="200") == 2
    assert value(text, "tm_requests_total", endpoint="unmatched", status="404") == 1
    assert value(text, "tm_request_seconds_count", api="q2t") == 3
    assert value(text, "tm_peers") == 1
    assert value(text, "tm_store_bytes") == 4096
    assert value(text, "tm_pushes_total") == 3
    assert value(text, "tm_pushed_envelopes_total") == 7
    assert value(text, "tm_push_failures_total") == 1
    assert value(generate_latest(second.registry).decode(), "tm_requests_total") == 0


@pytest.mark.slow
@pytest.mark.integration
def test_real_managers_serve_metrics_and_json_logs(
    managers: ManagerFactory, tmp_path: Path
) -> None:
    metrics = {"host": "127.0.0.1", "port": 0}
    b = managers.start("b", metrics=metrics)
    a = managers.create("a", [b]).start("--metrics-port", "0", "--log-format", "json")
    wait_until(lambda: a.knows_key(b.public_key), 20, "a to learn b's key")
    for _ in range(3):
        status, _ = a.send(b"payload", [b.public_key])
        assert status == 201
    urls = {m.name: json.loads(m.ports_file.read_text())["metrics"] for m in (a, b)}
    assert all(url.startswith("http://127.0.0.1:") for url in urls.values())
    status, body, headers = http("GET", urls["a"])
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    text = body.decode()
    assert value(text, "tm_requests_total", api="q2t", endpoint="/send", status="201") == 3
    assert value(text, "tm_request_seconds_count", api="q2t", endpoint="/send") == 3
    assert value(text, "tm_request_seconds_sum", api="q2t", endpoint="/send") > 0
    assert value(text, "tm_pushes_total") >= 1 and value(text, "tm_push_failures_total") == 0
    assert value(text, "tm_peers") >= 1
    assert value(text, "tm_store_bytes") > 0
    text_b = http("GET", urls["b"])[1].decode()
    assert value(text_b, "tm_requests_total", api="p2p", status="201") >= 1
    lines = [line for line in a.log_path.read_text().splitlines() if line.startswith("{")]
    assert lines, "no JSON log line"
    for line in lines:
        entry = json.loads(line)
        assert {"time", "level", "logger", "message"} <= entry.keys()
        assert entry["level"] in logging.getLevelNamesMapping()
