"""A recovering manager's answers, in process: its real service, store and Q2T app, with
peers that resend on cue. While a resend ALL is announced or running, a payload it does
not hold is answered 503 ``{"recovering": true}`` (``ManagerRecovering`` in the client),
never 404; a payload it holds is served; once every peer answered or failed, 404 again."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from tx_manager.api.q2t import build_q2t_app
from tx_manager.client import ManagerRecovering, Q2TClient, RecoveryStatus
from tx_manager.enclave import Enclave, KeyPair, generate_keypair
from tx_manager.errors import NotFound, PeerRequestFailed, Recovering
from tx_manager.messages import ResendRequest
from tx_manager.partyinfo import PartyRegistry
from tx_manager.payload import Envelope
from tx_manager.peer_client import PeerClient
from tx_manager.service import TransactionManager
from tx_manager.store import SqliteStore

pytestmark = pytest.mark.timeout(20)

PEERS = ("http://peer-1.test:9000", "http://peer-2.test:9000")


class CuedPeers:
    """Stands in for ``PeerClient``: each peer's resend ALL waits for its cue, then
    pushes its envelopes into the manager (as a real peer's /pushBatch would) or fails."""

    def __init__(self) -> None:
        self.manager: TransactionManager | None = None
        self.cues: dict[str, asyncio.Event] = {url: asyncio.Event() for url in PEERS}
        self.envelopes: dict[str, list[Envelope]] = {url: [] for url in PEERS}
        self.failing: set[str] = set()

    async def resend(self, url: str, request: ResendRequest) -> int:
        await self.cues[url].wait()
        if url in self.failing:
            raise PeerRequestFailed(url, "connection refused")
        assert self.manager is not None
        await self.manager.accept_push(self.envelopes[url])
        return len(self.envelopes[url])

    async def close(self) -> None:
        pass


@dataclass
class Harness:
    service: TransactionManager
    peers: CuedPeers
    client: Q2TClient
    own: KeyPair

    def envelope_from_peer(self, payload: bytes) -> Envelope:
        sender = generate_keypair()
        encoded = Enclave([sender]).encrypt(payload, sender.public, [self.own.public])
        return encoded.for_recipients({self.own.public})


@pytest.fixture
async def manager(tmp_path: Path) -> AsyncIterator[Harness]:
    own = generate_keypair()
    peers = CuedPeers()
    store = SqliteStore(tmp_path / "tm.db")
    service = TransactionManager(
        Enclave([own]), store, PartyRegistry((own.public,), PEERS), cast(PeerClient, peers)
    )
    peers.manager = service
    server = TestServer(build_q2t_app(service, 1024 * 1024))
    await server.start_server()
    client = Q2TClient(str(server.make_url("")))
    try:
        yield Harness(service, peers, client, own)
    finally:
        for cue in peers.cues.values():
            cue.set()
        await client.close()
        await server.close()
        await service.close()
        await store.close()


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0.005)


async def test_an_announced_recovery_answers_503_for_what_it_does_not_hold(
    manager: Harness,
) -> None:
    held = manager.envelope_from_peer(b"held before")
    await manager.service.accept_push([held])
    later = manager.envelope_from_peer(b"resent by peer 1")
    manager.peers.envelopes[PEERS[0]] = [later]

    manager.service.announce_recovery()  # as ManagerServer.start does before it listens

    assert await manager.client.recovery() == RecoveryStatus(recovering=True, received=0)
    with pytest.raises(ManagerRecovering) as caught:
        await manager.client.receive(later.hash)
    assert caught.value.status == 503
    assert "recovering" in caught.value.reason
    with pytest.raises(ManagerRecovering):
        await manager.client.receive_many([held.hash, later.hash])
    with pytest.raises(ManagerRecovering):
        await manager.client.receive_raw(later.hash)
    found = await manager.client.receive(held.hash)  # what it holds is served
    assert found is not None and found.payload == b"held before"

    recovery = asyncio.create_task(manager.service.recover(announced=True))
    manager.peers.cues[PEERS[0]].set()
    await _until(lambda: manager.service.recovery_received == 1)
    assert await manager.client.recovery() == RecoveryStatus(recovering=True, received=1)
    resent = await manager.client.receive(later.hash)
    assert resent is not None and resent.payload == b"resent by peer 1"
    with pytest.raises(ManagerRecovering):  # peer 2 may still bring it
        await manager.client.receive(b"\x07" * 64)

    manager.peers.failing.add(PEERS[1])
    manager.peers.cues[PEERS[1]].set()
    assert await recovery == 1

    assert await manager.client.recovery() == RecoveryStatus(recovering=False, received=1)
    assert await manager.client.receive(b"\x07" * 64) is None  # 404: not a party
    both = await manager.client.receive_many([later.hash, b"\x07" * 64])
    assert [found is not None for found in both] == [True, False]


async def test_the_503_body_says_recovering(manager: Harness) -> None:
    manager.service.announce_recovery()
    missing = (b"\x07" * 64).hex()
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{manager.client.base_url}/transaction/{missing}") as response,
    ):
        assert response.status == 503
        body = json.loads(await response.read())
    assert body["recovering"] is True
    assert "recovering from its peers" in body["error"]


async def test_an_unannounced_recovery_also_counts_and_ends_on_failure(
    manager: Harness,
) -> None:
    missing = b"\x09" * 64
    with pytest.raises(NotFound):
        await manager.service.receive(missing, None)
    manager.peers.failing.update(PEERS)

    recovery = asyncio.create_task(manager.service.recover())  # as POST /admin/recover
    await asyncio.sleep(0)
    assert manager.service.recovering
    with pytest.raises(Recovering):
        await manager.service.receive(missing, None)
    for cue in manager.peers.cues.values():
        cue.set()

    assert await recovery == 0
    assert not manager.service.recovering
    with pytest.raises(NotFound):
        await manager.service.receive(missing, None)
