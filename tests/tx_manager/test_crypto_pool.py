"""Crypto off the loop: the pool batches calls; receive and push verification use it."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest

from tx_manager.config import TlsConfig
from tx_manager.crypto_pool import CryptoPool
from tx_manager.enclave import Enclave, KeyPair, generate_keypair
from tx_manager.partyinfo import PartyRegistry
from tx_manager.payload import Envelope
from tx_manager.peer_client import PeerClient
from tx_manager.service import TransactionManager
from tx_manager.store import SqliteStore


async def test_calls_run_off_the_loop_in_shared_batches() -> None:
    pool = CryptoPool(workers=1)
    loop_thread = threading.get_ident()
    try:
        threads = await asyncio.gather(*(pool.run(threading.get_ident) for _ in range(100)))
        assert loop_thread not in threads
        assert pool.batches < 10  # 100 calls, far fewer hops
    finally:
        await pool.close()


async def test_each_call_gets_its_own_outcome() -> None:
    pool = CryptoPool(workers=2)

    def fails() -> int:
        raise ValueError("this call only")

    try:
        results = await asyncio.gather(
            pool.run(lambda: 1), pool.run(fails), pool.run(lambda: 3), return_exceptions=True
        )
        assert results[0] == 1 and results[2] == 3
        assert isinstance(results[1], ValueError)
    finally:
        await pool.close()


async def test_close_answers_waiting_calls_and_refuses_new_ones() -> None:
    pool = CryptoPool(workers=1)
    release = threading.Event()
    started = threading.Event()

    def blocking() -> str:
        started.set()
        release.wait(5)
        return "done"

    first = asyncio.create_task(pool.run(blocking))
    await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
    queued = asyncio.create_task(pool.run(lambda: "never"))
    await asyncio.sleep(0)
    closing = asyncio.create_task(pool.close())
    await asyncio.sleep(0)
    release.set()
    await asyncio.wait_for(closing, 5)
    assert await first == "done"
    with pytest.raises(RuntimeError, match="closing"):
        await queued
    with pytest.raises(RuntimeError, match="closed"):
        await pool.run(lambda: 1)


class RecordingEnclave(Enclave):
    """Records the thread each decrypt and verification runs on."""

    def __init__(self, keypairs: list[KeyPair]) -> None:
        super().__init__(keypairs)
        self.threads: list[tuple[str, int]] = []

    def decrypt(self, envelope: Envelope, as_key: bytes | None = None) -> bytes:
        self.threads.append(("decrypt", threading.get_ident()))
        return super().decrypt(envelope, as_key)

    def verify_incoming(self, envelope: Envelope) -> None:
        self.threads.append(("verify", threading.get_ident()))
        super().verify_incoming(envelope)


async def test_heavy_decryption_and_push_verification_run_off_the_loop(tmp_path: Path) -> None:
    sender, recipient = generate_keypair(), generate_keypair()
    enclave = RecordingEnclave([recipient])
    store = SqliteStore(tmp_path / "tm.db")
    peers = PeerClient(TlsConfig(), 1.0)
    service = TransactionManager(enclave, store, PartyRegistry([recipient.public], []), peers)
    loop_thread = threading.get_ident()

    def envelopes(count: int, size: int) -> list[Envelope]:
        return [
            Enclave([sender])
            .encrypt(os.urandom(size), sender.public, [recipient.public])
            .for_recipients({recipient.public})
            for _ in range(count)
        ]

    try:
        # A pushed batch of 20: one hop to a crypto thread for the whole batch.
        batch = envelopes(20, 100)
        batches_before = service._crypto.batches
        assert await service.accept_push(list(batch)) == [e.hash for e in batch]
        assert service._crypto.batches == batches_before + 1
        assert [kind for kind, _ in enclave.threads] == ["verify"] * 20
        assert all(thread != loop_thread for _, thread in enclave.threads)
        # One large payload: off the loop too.
        enclave.threads.clear()
        await service.accept_push(envelopes(1, 300 * 1024))
        assert enclave.threads[0][1] != loop_thread
        # A small push costs less than the hop: verified inline.
        enclave.threads.clear()
        await service.accept_push(envelopes(1, 100))
        assert enclave.threads == [("verify", loop_thread)]
        # A small payload decrypts inline (the hop would cost more than the work)...
        enclave.threads.clear()
        received = await service.receive(batch[0].hash, None)
        assert received.payload == Enclave([sender]).decrypt(batch[0])
        assert enclave.threads == [("decrypt", loop_thread)]
        # ...a large one off the loop.
        large = envelopes(1, 300 * 1024)
        await service.accept_push(large)
        enclave.threads.clear()
        received = await service.receive(large[0].hash, None)
        assert received.payload == Enclave([sender]).decrypt(large[0])
        assert [kind for kind, _ in enclave.threads] == ["decrypt"]
        assert enclave.threads[0][1] != loop_thread
    finally:
        await service.close()
        await peers.close()
        await store.close()
