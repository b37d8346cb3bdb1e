"""The Store contract: durability, merge rules, raw separation, paging, concurrency, faults.

Every test taking ``open_store`` runs against SQLite and against PostgreSQL (a private
instance, tests/support/postgres.py); the rest poke at SQLite's own machinery.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.support.postgres import PrivateServer
from tests.tx_manager.conftest import StoreOpener
from tx_manager.enclave import Enclave, generate_keypair
from tx_manager.errors import EnvelopeConflict, StoreError
from tx_manager.payload import EncodedPayload, ExecutionTerms, PrivacyMode
from tx_manager.pg_store import PostgresStore
from tx_manager.store import SqliteStore


def _envelope(recipients: int = 2) -> tuple[EncodedPayload, list[bytes]]:
    sender = generate_keypair()
    others = [generate_keypair().public for _ in range(recipients)]
    return Enclave([sender]).encrypt(os.urandom(64), sender.public, others), others


async def test_save_find_delete(open_store: StoreOpener) -> None:
    store = open_store()
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


async def test_second_push_adds_only_the_new_box(open_store: StoreOpener) -> None:
    store = open_store()
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


async def test_raw_is_kept_apart(open_store: StoreOpener) -> None:
    store = open_store()
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


async def test_writes_survive_reopen_and_group_commit(open_store: StoreOpener) -> None:
    store = open_store()
    envelopes = [_envelope(1)[0] for _ in range(200)]
    await asyncio.gather(*(store.save_envelopes([e]) for e in envelopes))
    assert store.commits < 200  # concurrent writers shared commits
    await store.close()
    reopened = open_store()
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


async def test_conflicting_copies_change_nothing(open_store: StoreOpener) -> None:
    store = open_store()
    try:
        envelope, (first, _) = _envelope()
        mine = envelope.for_recipients({first})
        await store.save_envelopes([mine])
        outsider = generate_keypair().public
        variants = {
            "recipient nonce": replace(mine, recipient_nonce=os.urandom(24)),
            "outside the authenticated group": replace(mine, recipient_keys=(outsider,)),
        }
        assert mine.header.terms is not None
        reflagged = replace(mine.header.terms, privacy_mode=PrivacyMode.PARTY_PROTECTION)
        widened = ExecutionTerms.build(
            mine.sender_key, [*mine.group_keys, outsider], mine.privacy_mode
        )
        # Same sealed payload (sender, nonce, key commitment) under another header: a new
        # hash, found through its body id.
        variants["privacyFlag"] = replace(mine, header=replace(mine.header, terms=reflagged))
        variants["parties"] = replace(mine, header=replace(mine.header, terms=widened))
        for reason, variant in variants.items():
            with pytest.raises(EnvelopeConflict) as conflict:
                await store.save_envelopes([variant])
            if variant.hash != mine.hash:
                assert "another header" in conflict.value.message
                stored_copy = await store.find_stored_copy(variant)
                assert stored_copy == mine
                assert reason in (stored_copy.conflict_with(variant) or "")
            else:
                assert reason in conflict.value.message
            assert await store.find_envelope(variant.hash) in (None, mine)
        assert await store.count_envelopes() == 1
        assert await store.find_envelope(mine.hash) == mine
        # A batch holding one conflicting envelope stores none of it.
        fresh, _ = _envelope()
        with pytest.raises(EnvelopeConflict):
            await store.save_envelopes([fresh, variants["privacyFlag"]])
        assert await store.find_envelope(fresh.hash) is None
        # Deleting a transaction frees its body for a later, different header.
        assert await store.delete_envelope(mine.hash)
        await store.save_envelopes([variants["privacyFlag"]])
        assert await store.find_stored_copy(mine) == variants["privacyFlag"]
    finally:
        await store.close()


@dataclass(frozen=True)
class FailsOnce(EncodedPayload):
    """An envelope whose encoding raises a non-SQLite exception the first time."""

    failures: list[int] | None = None

    def to_bytes(self) -> bytes:
        if self.failures is not None and not self.failures:
            self.failures.append(1)
            raise RuntimeError("injected fault inside the writer thread")
        return super().to_bytes()


async def test_unexpected_error_in_a_write_answers_it_and_the_writer_goes_on(
    open_store: StoreOpener,
) -> None:
    store = open_store()
    try:
        faulty_source, _ = _envelope()
        faulty = FailsOnce(**{f: getattr(faulty_source, f) for f in _fields()}, failures=[])
        others = [_envelope()[0] for _ in range(5)]
        results = await asyncio.wait_for(
            asyncio.gather(
                store.save_envelopes([faulty]),
                *(store.save_envelopes([e]) for e in others),
                return_exceptions=True,
            ),
            10,
        )
        assert isinstance(results[0], RuntimeError)
        assert results[1:] == [None] * 5
        assert await store.find_envelope(faulty.hash) is None
        await asyncio.wait_for(store.save_envelopes([faulty]), 10)  # writer still serving
        assert await store.count_envelopes() == 6
    finally:
        await store.close()


async def test_unexpected_error_in_a_whole_batch_answers_every_waiter(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "tm.db")
    try:
        run_batch = store._run_batch
        calls: list[int] = []

        def failing_once(connection: sqlite3.Connection, batch: list[Any]) -> Any:
            if not calls:
                calls.append(len(batch))
                connection.execute("BEGIN IMMEDIATE")
                raise MemoryError("injected fault at commit")
            return run_batch(connection, batch)

        store._run_batch = failing_once  # type: ignore[method-assign]
        first = [_envelope()[0] for _ in range(4)]
        results = await asyncio.wait_for(
            asyncio.gather(*(store.save_envelopes([e]) for e in first), return_exceptions=True),
            10,
        )
        failed = [r for r in results if isinstance(r, MemoryError)]
        assert len(failed) == calls[0] >= 1
        assert all(r is None or isinstance(r, MemoryError) for r in results)
        later, _ = _envelope()
        await asyncio.wait_for(store.save_envelopes([later]), 10)
        assert await store.find_envelope(later.hash) == later
    finally:
        await store.close()


async def test_a_closed_store_refuses_writes_at_once(open_store: StoreOpener) -> None:
    store = open_store()
    await store.close()
    with pytest.raises(StoreError, match="closed"):
        await asyncio.wait_for(store.save_envelopes([_envelope()[0]]), 5)


def _fields() -> list[str]:
    return [
        "header",
        "cipher_text",
        "recipient_nonce",
        "recipient_keys",
        "recipient_boxes",
        "keyed_terms",
        "terms_mac",
    ]


async def test_postgresql_store_reconnects_after_its_connections_were_cut(
    postgres_server: PrivateServer,
) -> None:
    """A server restart or failover cuts idle connections: the next write and read open
    new ones instead of failing (nothing had run on the lost connection)."""
    url = postgres_server.create_database()
    store = PostgresStore(url)
    try:
        before, _ = _envelope()
        await store.save_envelopes([before])
        assert await store.find_envelope(before.hash) == before
        with psycopg.connect(url, autocommit=True) as admin:
            cut = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()
        assert cut is not None and cut[0] >= 2  # the writer and a reader
        after, _ = _envelope()
        await asyncio.wait_for(store.save_envelopes([after]), 20)
        assert await store.find_envelope(after.hash) == after
        assert await store.find_envelope(before.hash) == before
        assert await store.count_envelopes() == 2
    finally:
        await store.close()
