"""PushCoalescer: batching keeps each caller's own outcome; cache stays consistent."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tx_manager.config import TlsConfig
from tx_manager.enclave import Enclave, generate_keypair
from tx_manager.errors import PeerRequestFailed
from tx_manager.payload import Envelope
from tx_manager.peer_client import PeerClient, PushCoalescer
from tx_manager.store import SqliteStore


class FakePeers(PeerClient):
    """Records batches; refuses (HTTP 422) any envelope whose payload is marked bad."""

    def __init__(self, bad: set[bytes], unreachable: bool = False) -> None:
        super().__init__(TlsConfig(), 1.0)
        self.bad = bad
        self.unreachable = unreachable
        self.batches: list[int] = []
        self.singles = 0

    async def push_batch(self, url: str, envelopes: list[Envelope]) -> None:
        await asyncio.sleep(0.001)
        self.batches.append(len(envelopes))
        if self.unreachable:
            raise PeerRequestFailed(url, "connection refused")
        if any(e.hash in self.bad for e in envelopes):
            raise PeerRequestFailed(url, "HTTP 422: bad envelope", 422)

    async def push(self, url: str, envelope: Envelope) -> None:
        await asyncio.sleep(0.001)
        self.singles += 1
        if self.unreachable:
            raise PeerRequestFailed(url, "connection refused")
        if envelope.hash in self.bad:
            raise PeerRequestFailed(url, "HTTP 422: bad envelope", 422)


def _envelopes(count: int) -> list[Envelope]:
    sender, recipient = generate_keypair(), generate_keypair()
    enclave = Enclave([sender])
    return [
        enclave.encrypt(os.urandom(32), sender.public, [recipient.public]) for _ in range(count)
    ]


async def test_concurrent_pushes_share_batches() -> None:
    envelopes = _envelopes(50)
    peers = FakePeers(set())
    coalescer = PushCoalescer(peers, in_flight_per_peer=1)
    await asyncio.gather(*(coalescer.push("http://peer", e) for e in envelopes))
    assert sum(peers.batches) + peers.singles == 50
    assert len(peers.batches) < 10


async def test_one_refused_envelope_fails_only_its_own_send() -> None:
    envelopes = _envelopes(20)
    peers = FakePeers({envelopes[7].hash})
    coalescer = PushCoalescer(peers, in_flight_per_peer=1)
    results = await asyncio.gather(
        *(coalescer.push("http://peer", e) for e in envelopes), return_exceptions=True
    )
    failed = [i for i, r in enumerate(results) if isinstance(r, PeerRequestFailed)]
    assert failed == [7]


async def test_unreachable_peer_fails_every_send_of_the_batch() -> None:
    peers = FakePeers(set(), unreachable=True)
    coalescer = PushCoalescer(peers)
    results = await asyncio.gather(
        *(coalescer.push("http://peer", e) for e in _envelopes(10)), return_exceptions=True
    )
    assert all(isinstance(r, PeerRequestFailed) for r in results)


async def test_batches_respect_the_byte_limit() -> None:
    envelopes = _envelopes(30)
    peers = FakePeers(set())
    coalescer = PushCoalescer(peers, max_bytes=5 * 600, in_flight_per_peer=1)
    await asyncio.gather(*(coalescer.push("http://peer", e) for e in envelopes))
    assert max(peers.batches) <= 5


@pytest.mark.parametrize("cache_bytes", [0, 10**6])
async def test_store_cache_never_outlives_a_delete(tmp_path: Path, cache_bytes: int) -> None:
    store = SqliteStore(tmp_path / "tm.db", cache_bytes=cache_bytes)
    try:
        (envelope,) = _envelopes(1)
        await store.save_envelopes([envelope])
        assert await store.find_envelope(envelope.hash) == envelope
        await store.delete_envelope(envelope.hash)
        assert await store.find_envelope(envelope.hash) is None
    finally:
        await store.close()


class BrokenPeers(FakePeers):
    """Raises something that is not a PeerRequestFailed: a bug, not the peer."""

    async def push_batch(self, url: str, envelopes: list[Envelope]) -> None:
        await asyncio.sleep(0.001)
        raise RuntimeError("bug while pushing a batch")

    async def push(self, url: str, envelope: Envelope) -> None:
        await asyncio.sleep(0.001)
        raise RuntimeError("bug while pushing one")


async def test_an_unexpected_error_answers_every_caller() -> None:
    coalescer = PushCoalescer(BrokenPeers(set()), in_flight_per_peer=1)
    results = await asyncio.wait_for(
        asyncio.gather(
            *(coalescer.push("http://peer", e) for e in _envelopes(12)), return_exceptions=True
        ),
        10,
    )
    assert len(results) == 12
    assert all(isinstance(r, RuntimeError) for r in results)


class StuckPeers(FakePeers):
    """A peer that never answers (until cancelled); ``reached`` is set once a push arrives."""

    def __init__(self) -> None:
        super().__init__(set())
        self.reached = asyncio.Event()

    async def push_batch(self, url: str, envelopes: list[Envelope]) -> None:
        self.reached.set()
        await asyncio.Event().wait()

    async def push(self, url: str, envelope: Envelope) -> None:
        self.reached.set()
        await asyncio.Event().wait()


async def test_close_answers_in_flight_and_queued_callers() -> None:
    peers = StuckPeers()
    coalescer = PushCoalescer(peers, in_flight_per_peer=1)
    callers = [asyncio.create_task(coalescer.push("http://peer", e)) for e in _envelopes(6)]
    await asyncio.wait_for(peers.reached.wait(), 5)  # the first batch in flight, more queued
    callers.append(asyncio.create_task(coalescer.push("http://peer", _envelopes(1)[0])))
    await asyncio.sleep(0)  # the late caller has queued behind the stuck batch
    assert not any(caller.done() for caller in callers)
    await asyncio.wait_for(coalescer.close(), 5)
    results = await asyncio.wait_for(asyncio.gather(*callers, return_exceptions=True), 5)
    assert all(isinstance(r, PeerRequestFailed) for r in results), results
    with pytest.raises(PeerRequestFailed, match="shutting down"):
        await coalescer.push("http://peer", _envelopes(1)[0])
