"""SqliteStore: durability contract, merging pushes, raw separation, paging, concurrency."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from tx_manager.enclave import Enclave, generate_keypair
from tx_manager.payload import EncodedPayload
from tx_manager.store import SqliteStore


def _envelope(recipients: int = 2) -> tuple[EncodedPayload, list[bytes]]:
    sender = generate_keypair()
    others = [generate_keypair().public for _ in range(recipients)]
    return Enclave([sender]).encrypt(os.urandom(64), sender.public, others), others


async def test_save_find_delete(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "tm.db")
    try:
        envelope, _ = _envelope()
        assert await store.find_envelope(envelope.hash) is None
        await store.save_envelopes([envelope])
        assert await store.find_envelope(envelope.hash) == envelope
        assert await store.count_envelopes() == 1
        assert await store.delete_envelope(envelope.hash) is True
        assert await store.delete_envelope(envelope.hash) is False
        assert await store.find_envelope(envelope.hash) is None
    finally:
        await store.close()


async def test_second_push_adds_only_the_new_box(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "tm.db")
    try:
        envelope, (first, second) = _envelope()
        await store.save_envelopes([envelope.for_recipients({first})])
        await store.save_envelopes([envelope.for_recipients({second})])
        await store.save_envelopes([envelope.for_recipients({second})])
        stored = await store.find_envelope(envelope.hash)
        assert stored is not None
        assert set(stored.recipient_keys) == {first, second}
        assert stored.group_keys == envelope.group_keys
    finally:
        await store.close()


async def test_raw_is_kept_apart(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "tm.db")
    try:
        sender = generate_keypair()
        raw = Enclave([sender]).encrypt_raw(b"raw", sender.public)
        await store.save_raw(raw)
        assert await store.find_raw(raw.hash) == raw
        assert await store.find_envelope(raw.hash) is None
        assert await store.count_envelopes() == 0
        assert await store.delete_raw(raw.hash) is True
        assert await store.find_raw(raw.hash) is None
    finally:
        await store.close()


async def test_writes_survive_reopen_and_group_commit(tmp_path: Path) -> None:
    path = tmp_path / "tm.db"
    store = SqliteStore(path)
    envelopes = [_envelope(1)[0] for _ in range(200)]
    await asyncio.gather(*(store.save_envelopes([e]) for e in envelopes))
    assert store.commits < 200  # concurrent writers shared commits
    await store.close()
    reopened = SqliteStore(path)
    try:
        assert await reopened.count_envelopes() == 200
        seen: list[bytes] = []
        after = b""
        while page := await reopened.page_envelopes(after, 64):
            seen.extend(e.hash for e in page)
            after = page[-1].hash
        assert sorted(seen) == sorted(e.hash for e in envelopes)
        assert seen == sorted(seen)
    finally:
        await reopened.close()


async def test_corrupt_row_fails_only_its_own_write(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "tm.db"
    store = SqliteStore(path)
    try:
        envelope, _ = _envelope()
        good, _ = _envelope()
        connection = sqlite3.connect(path)
        connection.execute("INSERT INTO envelopes VALUES (?, ?)", (envelope.hash, b"garbage"))
        connection.commit()
        connection.close()
        results = await asyncio.gather(
            store.save_envelopes([envelope]), store.save_envelopes([good]), return_exceptions=True
        )
        assert isinstance(results[0], Exception)
        assert results[1] is None
        assert await store.find_envelope(good.hash) == good
    finally:
        await store.close()
