"""Durable storage of envelopes, raw transactions and signed group commitments.

``Store`` is the seam; ``SqliteStore`` the default. Its promise: when a write
coroutine returns, the row is committed with ``synchronous=FULL`` in WAL mode,
so it survives kill -9 and power loss. Writes go through one writer thread that
commits whatever is queued as one transaction (group commit: one fsync for many
sends) and wakes each waiter only after that commit. Reads use a small thread
pool with one connection per thread, which also decode what they read. Nothing
here runs SQLite, or decodes a stored row, on the event loop.

Whatever goes wrong inside one write (an SQLite error, a conflict, an
unexpected exception) fails that write alone and is handed to its waiter; the
writer thread goes on serving later writes. Nothing waits forever.

Recently written envelopes are also kept, decoded, in a bounded write-through
cache: a node imports a block moments after its private transactions were
pushed, so most reads are of fresh envelopes. Only writes fill the cache (after
their commit) and deletes empty it, so it never holds what the database does not.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar

from tx_manager import store_rows as rows
from tx_manager.commitment_messages import StoredCommitment
from tx_manager.errors import (
    StoreError,
    TxManagerError,
)
from tx_manager.futures import settle
from tx_manager.payload import Envelope, Raw

log = logging.getLogger(__name__)

T = TypeVar("T")

# Version 2 envelopes add the envelope_bodies table, group commitments the commitments
# table (each created when missing); the schema version stays 1 because older code
# reading the same file ignores them. A block number is stored as 8 big-endian bytes:
# SQLite's integers stop at 2^63 - 1, a claim's at 2^64 - 1.
SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS envelopes (hash BLOB PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS raw_transactions (hash BLOB PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS envelope_bodies (
    body_id BLOB PRIMARY KEY, hash BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS commitments (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id BLOB NOT NULL,
    block_number BLOB NOT NULL,
    member BLOB NOT NULL,
    root BLOB NOT NULL,
    signer BLOB NOT NULL,
    commitment TEXT NOT NULL,
    own INTEGER NOT NULL,
    members TEXT NOT NULL,
    UNIQUE (group_id, block_number, member, root, signer)
);
CREATE UNIQUE INDEX IF NOT EXISTS commitments_own
    ON commitments (group_id, block_number, member) WHERE own = 1;
"""
_MAX_BATCH = 512
_CACHE_BYTES = 64 * 1024 * 1024


class Store(Protocol):
    """What the manager needs from storage; every write is durable when it returns."""

    async def save_envelopes(self, envelopes: list[Envelope]) -> None:
        """Store envelopes atomically (all or none).

        An envelope already stored gains only the new boxes, and only if the
        stored copy allows it (``conflict_with``); a version-2 envelope whose
        sealed payload is stored under another hash is refused too. Both raise
        ``EnvelopeConflict`` and store nothing.
        """

    async def find_envelope(self, tx_hash: bytes) -> Envelope | None: ...

    async def find_stored_copy(self, envelope: Envelope) -> Envelope | None:
        """The stored envelope of the same hash, else of the same sealed payload (body id)."""

    async def delete_envelope(self, tx_hash: bytes) -> bool: ...

    async def page_envelopes(self, after: bytes, limit: int) -> list[Envelope]:
        """Envelopes with hash > ``after`` in hash order (for resend ALL)."""

    async def count_envelopes(self) -> int: ...

    async def save_raw(self, raw: Raw) -> None: ...

    async def find_raw(self, tx_hash: bytes) -> Raw | None: ...

    async def delete_raw(self, tx_hash: bytes) -> bool: ...

    async def save_commitments(self, records: list[StoredCommitment]) -> list[StoredCommitment]:
        """Store commitments atomically (all or none); the stored records, with their seq.

        A commitment already stored (same group, height, member, root and signer) is
        not stored twice: its stored record is returned. An own commitment for a group,
        height and member that already has an own commitment of another root raises
        ``CommitmentConflict`` and stores nothing.
        """

    async def find_own_commitment(
        self, group_id: bytes, block_number: int, member: bytes
    ) -> StoredCommitment | None: ...

    async def page_commitments(self, after_seq: int, limit: int) -> list[StoredCommitment]:
        """Commitments with seq > ``after_seq`` in seq (arrival) order."""

    async def size_bytes(self) -> int:
        """What the store occupies on disk (for the ``tm_store_bytes`` metric)."""

    async def close(self) -> None: ...


#: The rows' SQL as SQLite takes it: one writer thread, so no row locks are needed.
SQLITE = rows.Dialect(placeholder="?", row_lock="", serialise_commitments=lambda _: None)

_Job = tuple[Callable[[sqlite3.Connection], Any], "asyncio.Future[Any]", asyncio.AbstractEventLoop]


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA busy_timeout=10000")
    return connection


class SqliteStore(rows.RowStore):
    """SQLite in WAL mode, one writer thread with group commit, pooled readers."""

    dialect = SQLITE

    def __init__(self, path: Path, readers: int = 2, cache_bytes: int = _CACHE_BYTES) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        try:
            setup = _connect(path)
            setup.executescript(_SCHEMA)
            version = setup.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                setup.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            elif version != SCHEMA_VERSION:
                raise StoreError(f"{path}: schema version {version}, expected {SCHEMA_VERSION}")
            setup.close()
            # Opened here, not in the thread: a file that cannot be opened fails the start.
            writer_connection = _connect(path)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open store {path}: {exc}") from exc
        self._closed = False
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._writer = threading.Thread(
            target=self._write_loop, args=(writer_connection,), name="tm-store-writer", daemon=True
        )
        self._writer.start()
        self._local = threading.local()
        self._reader_connections: list[sqlite3.Connection] = []
        self._readers = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="tm-store-read")
        self.commits = 0
        self._cache: OrderedDict[bytes, Envelope] = OrderedDict()
        self._cache_bytes = 0
        self._cache_limit = cache_bytes

    def _cache_put(self, tx_hash: bytes, envelope: Envelope) -> None:
        self._cache_drop(tx_hash)
        self._cache[tx_hash] = envelope
        self._cache_bytes += len(envelope.cipher_text)
        while self._cache_bytes > self._cache_limit and self._cache:
            _, evicted = self._cache.popitem(last=False)
            self._cache_bytes -= len(evicted.cipher_text)

    def _cache_drop(self, tx_hash: bytes) -> None:
        dropped = self._cache.pop(tx_hash, None)
        if dropped is not None:
            self._cache_bytes -= len(dropped.cipher_text)

    # -- writer thread --------------------------------------------------------------
    def _write_loop(self, connection: sqlite3.Connection) -> None:
        try:
            while True:
                job = self._jobs.get()
                if job is None:
                    return
                batch = [job]
                stop = False
                while len(batch) < _MAX_BATCH:
                    try:
                        more = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        stop = True
                        break
                    batch.append(more)
                self._commit_batch(connection, batch)
                if stop:
                    return
        finally:
            connection.close()

    def _commit_batch(self, connection: sqlite3.Connection, batch: list[_Job]) -> None:
        """Run and commit one batch; every job's waiter is answered, whatever happens."""
        outcomes: list[tuple[Any, BaseException | None]] = [
            (None, StoreError("write was not attempted"))
        ] * len(batch)
        try:
            outcomes = self._run_batch(connection, batch)
        except Exception as exc:  # every waiter must get an answer
            log.error("store commit of %d writes failed: %r", len(batch), exc)
            try:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
            except sqlite3.Error as rollback_error:
                log.error("store rollback failed too: %s", rollback_error)
            failure = _job_error(exc, "commit failed")
            outcomes = [(None, failure)] * len(batch)
        finally:
            for (_, future, loop), (result, error) in zip(batch, outcomes, strict=True):
                try:
                    loop.call_soon_threadsafe(settle, future, result, error)
                except RuntimeError:
                    pass  # the loop that waited is gone; nothing is left to answer

    def _run_batch(
        self, connection: sqlite3.Connection, batch: list[_Job]
    ) -> list[tuple[Any, BaseException | None]]:
        outcomes: list[tuple[Any, BaseException | None]] = []
        connection.execute("BEGIN IMMEDIATE")
        for operation, _, _ in batch:
            connection.execute("SAVEPOINT job")
            try:
                outcomes.append((operation(connection), None))
                connection.execute("RELEASE job")
            except Exception as exc:  # one failed write fails only itself
                connection.execute("ROLLBACK TO job")
                connection.execute("RELEASE job")
                outcomes.append((None, _job_error(exc, "write failed")))
        connection.execute("COMMIT")
        self.commits += 1
        return outcomes

    async def _write(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise StoreError("the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((operation, future, loop))
        return await future

    # -- readers --------------------------------------------------------------------
    def _reader(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = _connect(self.path)
            self._local.connection = connection
            self._reader_connections.append(connection)
        return connection

    async def _read(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            try:
                return operation(self._reader())
            except sqlite3.Error as exc:
                raise StoreError(f"read failed: {exc}") from exc

        return await asyncio.get_running_loop().run_in_executor(self._readers, run)

    # -- Store: the rows are ``store_rows.RowStore``'s, the envelopes' through the cache --
    async def save_envelopes(self, envelopes: list[Envelope]) -> None:
        stored = await self._write(partial(rows.save_envelopes, SQLITE, envelopes=envelopes))
        for tx_hash, envelope in stored:
            self._cache_put(tx_hash, envelope)

    async def find_envelope(self, tx_hash: bytes) -> Envelope | None:
        cached = self._cache.get(tx_hash)
        if cached is not None:
            return cached
        return await super().find_envelope(tx_hash)

    async def delete_envelope(self, tx_hash: bytes) -> bool:
        self._cache_drop(tx_hash)  # before and after: a concurrent save may refill it
        deleted = await super().delete_envelope(tx_hash)
        self._cache_drop(tx_hash)
        return deleted

    async def size_bytes(self) -> int:
        """The database file with its WAL (one ``stat`` each: cheap enough for the loop)."""
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += self.path.with_name(self.path.name + suffix).stat().st_size
            except OSError:
                continue
        return total

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._jobs.put(None)
        await asyncio.get_running_loop().run_in_executor(None, self._writer.join)
        self._readers.shutdown(wait=True)
        for connection in self._reader_connections:
            connection.close()


def _job_error(exc: Exception, what: str) -> BaseException:
    """What a waiter gets: our own errors as they are, SQLite's as StoreError (503).

    Anything else is unexpected and reaches the HTTP edge unchanged, which logs
    it with its traceback and answers 500.
    """
    if isinstance(exc, TxManagerError):
        return exc
    if isinstance(exc, sqlite3.Error):
        return StoreError(f"{what}: {exc}")
    return exc
