"""Bounds: peer and key tables, derived keys, request bodies, per-caller rate limits."""

from __future__ import annotations

import base64
import json
import logging
import os
import re
from pathlib import Path
from typing import Any, cast

import pytest

from tests.tx_manager.conftest import Manager, ManagerFactory, Trio, http, post_json, wait_until
from tx_manager.api.p2p import build_p2p_app
from tx_manager.api.q2t import build_q2t_app
from tx_manager.config import LimitsConfig, TlsConfig, parse_config
from tx_manager.discovery import Discovery
from tx_manager.enclave import Enclave, generate_keypair
from tx_manager.errors import ManagerConfigError, PeerRequestFailed
from tx_manager.messages import PartyInfo, ValidationRequest
from tx_manager.partyinfo import PartyRegistry
from tx_manager.payload import b64encode
from tx_manager.peer_client import PeerClient
from tx_manager.ratelimit import RateLimit, TokenBuckets


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_buckets_refuse_beyond_the_burst_and_refill_at_the_rate() -> None:
    clock = Clock()
    buckets = TokenBuckets(RateLimit(rate=2.0, burst=3), clock=clock)
    assert [buckets.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.acquire("a") == pytest.approx(0.5)
    assert buckets.acquire("b") == 0.0  # each caller has its own bucket
    clock.now += 0.5
    assert buckets.acquire("a") == 0.0
    assert buckets.acquire("a") > 0
    clock.now += 10
    assert [buckets.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]  # capped at the burst
    assert buckets.acquire("a") > 0
    assert buckets.refused == 3


def test_token_buckets_remember_a_bounded_number_of_callers() -> None:
    buckets = TokenBuckets(RateLimit(rate=1.0, burst=1), max_callers=100, clock=Clock())
    for index in range(10_000):
        buckets.acquire(f"10.0.{index // 256}.{index % 256}")
    assert buckets.callers == 100


def test_registry_caps_peers_and_key_routes() -> None:
    registry = PartyRegistry([b"l" * 32], ["http://configured"], max_peers=3, max_key_routes=2)
    assert registry.add_peer("http://p1") and registry.add_peer("http://p2")
    assert not registry.add_peer("http://p3")
    assert registry.peers == ("http://configured", "http://p1", "http://p2")
    assert registry.ignored_peers == 1
    assert registry.accept(b"a" * 32, "http://p1") and registry.accept(b"b" * 32, "http://p2")
    assert registry.key_room == 0
    assert not registry.accept(b"c" * 32, "http://p1")
    assert registry.url_for(b"c" * 32) is None
    assert registry.accept(b"a" * 32, "http://p2")  # a known key may move to a proven URL
    assert registry.url_for(b"a" * 32) == "http://p2"


class RecordingPeers(PeerClient):
    """Counts challenges; no claimed URL can answer them."""

    def __init__(self) -> None:
        super().__init__(TlsConfig(), 1.0)
        self.challenges = 0

    async def validate(self, url: str, request: ValidationRequest) -> bytes:
        self.challenges += 1
        raise PeerRequestFailed(url, "connection refused")


async def test_gossip_beyond_the_caps_is_ignored_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    local = generate_keypair()
    registry = PartyRegistry([local.public], [], max_peers=50, max_key_routes=20)
    peers = RecordingPeers()
    discovery = Discovery(registry, Enclave([local]), peers, interval=1.0)
    flood = PartyInfo(
        url="http://flooder",
        peers=tuple(f"http://peer-{i}" for i in range(5_000)),
        keys=tuple((generate_keypair().public, f"http://peer-{i}") for i in range(100)),
    )
    with caplog.at_level(logging.WARNING, logger="tx_manager.discovery"):
        await discovery.merge(flood)
        await discovery.merge(flood)
    assert len(registry.peers) == 50
    assert peers.challenges <= 2 * 20  # never more challenges than there is room for
    full_warnings = [r for r in caplog.records if "table is full" in r.getMessage()]
    assert len(full_warnings) == 2  # once for peers, once for key routes
    await peers.close()


def test_limits_config() -> None:
    base = {"keys": [{"public": "a.pub", "private": "a.key"}]}
    assert parse_config(base, Path("/tmp")).limits == LimitsConfig()
    custom = parse_config(
        {**base, "limits": {"max_peers": 8, "resend_rate": 0.5, "partyinfo_burst": 3}},
        Path("/tmp"),
    ).limits
    assert (custom.max_peers, custom.resend_rate, custom.partyinfo_burst) == (8, 0.5, 3)
    for bad in (
        {"max_peers": 0},
        {"resend_rate": -1},
        {"partyinfo_burst": 1.5},
        {"derived_key_cache": "many"},
        {"no_such_limit": 1},
    ):
        with pytest.raises(ManagerConfigError):
            parse_config({**base, "limits": bad}, Path("/tmp"))
    with pytest.raises(ManagerConfigError, match="max_peers"):
        parse_config(
            {**base, "peers": ["http://a", "http://b"], "limits": {"max_peers": 1}}, Path("/tmp")
        )


# -- through the real process ------------------------------------------------------------


def _routes() -> list[tuple[str, str, str]]:
    """(api, method, path) of every route both apps serve, read from their routers."""
    service, discovery = cast(Any, object()), cast(Any, object())
    found = []
    for api, app in (
        ("q2t", build_q2t_app(service, 1024)),
        ("p2p", build_p2p_app(service, discovery, 1024)),
    ):
        for route in app.router.routes():
            if route.method == "HEAD":
                continue
            path = route.resource.canonical if route.resource is not None else ""
            found.append((api, route.method, path.replace("{hash}", "a" * 128)))
    return found


ROUTES = _routes()


@pytest.mark.integration
@pytest.mark.parametrize(("api", "method", "path"), ROUTES)
def test_every_endpoint_caps_its_body(trio: Trio, api: str, method: str, path: str) -> None:
    base = trio.a.q2t if api == "q2t" else trio.a.p2p
    body = b"\x00" * (64 * 1024 + 1)  # the trio's max_body_bytes is 64 KiB
    status, raw, headers = http(method, base + path, body, {"Content-Type": "application/json"})
    assert status == 413, raw
    assert "exceeds the limit of 65536 bytes" in json.loads(raw)["error"]
    assert headers.get("Connection", "").lower() == "close"
    assert http("GET", trio.a.q2t + "/upcheck")[0] == 200


@pytest.mark.integration
@pytest.mark.parametrize(
    ("api", "path", "content_type"),
    [
        ("q2t", "/send", "application/json"),
        ("p2p", "/push", "application/octet-stream"),
        ("p2p", "/pushBatch", "application/octet-stream"),
    ],
)
def test_a_streamed_body_without_length_is_cut_off(
    trio: Trio, api: str, path: str, content_type: str
) -> None:
    base = trio.a.q2t if api == "q2t" else trio.a.p2p
    chunks = iter([b"\x00" * 16 * 1024] * 8)  # 128 KiB, chunked: no Content-Length
    status, raw, _ = http("POST", base + path, chunks, {"Content-Type": content_type})  # type: ignore[arg-type]
    assert status == 413, raw
    assert "exceeds the limit" in json.loads(raw)["error"]


@pytest.mark.integration
def test_rate_limits_answer_429_with_retry_after(managers: ManagerFactory) -> None:
    manager = managers.start(
        "limited",
        limits={"partyinfo_rate": 0.2, "partyinfo_burst": 2, "resend_rate": 0.2, "resend_burst": 1},
    )
    assert http("GET", manager.p2p + "/partyinfo")[0] == 200
    assert (
        post_json(manager.p2p + "/partyinfo", {"url": "http://x", "peers": [], "keys": []})[0]
        == 200
    )
    status, raw, headers = http("GET", manager.p2p + "/partyinfo")
    assert status == 429, raw
    assert int(headers["Retry-After"]) >= 1
    assert "too many requests to /partyinfo" in json.loads(raw)["error"]
    validate = {"from": b64encode(os.urandom(32)), "to": manager.public_key, "nonce": "", "box": ""}
    assert post_json(manager.p2p + "/partyinfo/validate", validate)[0] == 429  # shares the bucket
    resend = {"type": "ALL", "publicKey": b64encode(os.urandom(32))}
    assert post_json(manager.p2p + "/resend", resend)[0] == 404  # its one token: a real answer
    status, body = post_json(manager.p2p + "/resend", resend)
    assert status == 429 and "/resend" in body["error"]
    assert http("GET", manager.p2p + "/partyinfo/keys")[0] == 200  # not limited
    assert http("GET", manager.q2t + "/keys")[0] == 200
    wait_until(lambda: "rate limit: refused" in manager.log_path.read_text(), 10, "the log line")


def _knows_all(managers: list[Manager]) -> bool:
    return all(m.knows_key(o.public_key) for m in managers for o in managers if o is not m)


@pytest.mark.integration
@pytest.mark.slow
def test_default_limits_never_refuse_honest_discovery_or_recovery(
    managers: ManagerFactory,
) -> None:
    """Six managers on one address (as qnet runs them), discovery every 0.3 s (qnet: 1 s),
    sends, a recovery (resend ALL from every peer) on each, and a late joiner: with the
    default limits nobody is ever refused."""
    started = [managers.start("m0")]
    for index in range(1, 5):
        started.append(managers.start(f"m{index}", [started[-1]]))  # a chain: peers of peers
    wait_until(lambda: _knows_all(started), 30, "every manager to know every key")
    for sender, recipient in zip(started, started[1:] + started[:1], strict=True):
        status, body = sender.send(b"honest", [recipient.public_key])
        assert status == 201, body
    for manager in started:
        status, body = post_json(manager.q2t + "/admin/recover", {})
        assert status == 200, body
        assert body["received"] >= 1
    late = managers.start("late", [started[0]])
    everyone = [*started, late]
    wait_until(lambda: _knows_all(everyone), 30, "every manager to know the late joiner")
    for manager in everyone:
        log_text = manager.log_path.read_text()
        assert "rate limit" not in log_text, manager.name
        # a status 429 anywhere, not a port number that happens to contain the digits
        assert not re.search(r"\b429\b", log_text), manager.name
    assert base64.b64decode(late.public_key)
