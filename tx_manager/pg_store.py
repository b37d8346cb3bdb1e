"""The ``Store`` in PostgreSQL (psycopg 3), for managers that share one database.

Same promise as ``SqliteStore``: a write coroutine returns only after its
transaction committed on the server (``synchronous_commit`` as the server has it,
``on`` by default: flushed to the server's WAL), through one writer thread that
commits whatever is queued as one transaction, each job in a savepoint of its
own so that one failed write fails only itself. Reads run on a small pool of
threads, one connection each. Nothing here runs a query, or decodes a row, on
the event loop.

Unlike ``SqliteStore`` there is no cache of fresh envelopes: another manager of
the same party may add a box to, or delete, a row at any time, and a cache would
answer with the old copy. What several writers need is in the SQL: a merge locks
the row it reads (``FOR UPDATE``); concurrent inserts of one hash or one sealed
payload wait for each other (``ON CONFLICT``); commitments are inserted under an
advisory lock, so that their ``seq`` grows in commit order and a reader paging by
``seq`` never skips a row committed late with a lower number.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import psycopg

from tx_manager import store_rows as rows
from tx_manager.errors import (
    StoreError,
    TxManagerError,
)
from tx_manager.futures import settle

log = logging.getLogger(__name__)

T = TypeVar("T")

SCHEMA_VERSION = 1
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS tm_schema (version INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS envelopes (hash BYTEA PRIMARY KEY, data BYTEA NOT NULL)",
    "CREATE TABLE IF NOT EXISTS raw_transactions (hash BYTEA PRIMARY KEY, data BYTEA NOT NULL)",
    "CREATE TABLE IF NOT EXISTS envelope_bodies (body_id BYTEA PRIMARY KEY, hash BYTEA NOT NULL)",
    """CREATE TABLE IF NOT EXISTS commitments (
        seq BIGSERIAL PRIMARY KEY,
        group_id BYTEA NOT NULL,
        block_number BYTEA NOT NULL,
        member BYTEA NOT NULL,
        root BYTEA NOT NULL,
        signer BYTEA NOT NULL,
        commitment TEXT NOT NULL,
        own BOOLEAN NOT NULL,
        members TEXT NOT NULL,
        UNIQUE (group_id, block_number, member, root, signer)
    )""",
    "CREATE UNIQUE INDEX IF NOT EXISTS commitments_own"
    " ON commitments (group_id, block_number, member) WHERE own",
)
_TABLES = ("envelopes", "raw_transactions", "envelope_bodies", "commitments", "tm_schema")
# Advisory lock keys (any fixed 64-bit numbers): schema set-up, commitment inserts.
_SCHEMA_LOCK = 0x71_6D_73_63_68_65_6D_61
_COMMITMENT_LOCK = 0x71_6D_63_6F_6D_6D_69_74


def _serialise_commitments(connection: rows.Connection) -> None:
    """Commitments are numbered in commit order even when two managers insert at once."""
    connection.execute("SELECT pg_advisory_xact_lock(%s)", (_COMMITMENT_LOCK,))


#: The rows' SQL as PostgreSQL takes it: rows about to be rewritten are locked (another
#: manager may share the database), commitment inserts serialised.
POSTGRES = rows.Dialect(
    placeholder="%s", row_lock=" FOR UPDATE", serialise_commitments=_serialise_commitments
)
_MAX_BATCH = 512
_CONNECT_TIMEOUT = 10

_Job = tuple[Callable[[psycopg.Connection], Any], "asyncio.Future[Any]", asyncio.AbstractEventLoop]


def _connect(url: str) -> psycopg.Connection:
    return psycopg.connect(
        url,
        autocommit=True,
        connect_timeout=_CONNECT_TIMEOUT,
        application_name="quorum-py tx-manager",
    )


def _redacted(url: str) -> str:
    """The URL without its password, for messages."""
    scheme, _, rest = url.partition("://")
    credentials, at, location = rest.rpartition("@")
    if not at:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}@{location}"


class PostgresStore(rows.RowStore):
    """PostgreSQL, one writer thread with group commit, pooled readers, no cache."""

    dialect = POSTGRES

    def __init__(self, url: str, readers: int = 2) -> None:
        self.url = url
        try:
            with _connect(url) as setup, setup.transaction():
                setup.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                for statement in _SCHEMA:
                    setup.execute(statement)
                row = setup.execute("SELECT version FROM tm_schema").fetchone()
                if row is None:
                    setup.execute("INSERT INTO tm_schema VALUES (%s)", (SCHEMA_VERSION,))
                elif row[0] != SCHEMA_VERSION:
                    raise StoreError(
                        f"{_redacted(url)}: schema version {row[0]}, expected {SCHEMA_VERSION}"
                    )
            writer_connection = _connect(url)
        except psycopg.Error as exc:
            raise StoreError(f"cannot open store {_redacted(url)}: {_one_line(exc)}") from exc
        self._closed = False
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._writer = threading.Thread(
            target=self._write_loop, args=(writer_connection,), name="tm-pg-writer", daemon=True
        )
        self._writer.start()
        self._local = threading.local()
        self._reader_connections: list[psycopg.Connection] = []
        self._readers = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="tm-pg-read")
        self.commits = 0

    # -- writer thread --------------------------------------------------------------
    def _write_loop(self, connection: psycopg.Connection) -> None:
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
                connection = self._commit_batch(connection, batch)
                if stop:
                    return
        finally:
            connection.close()

    def _commit_batch(
        self, connection: psycopg.Connection, batch: list[_Job]
    ) -> psycopg.Connection:
        """Run and commit one batch; every waiter is answered. The connection to use next
        (a new one when this one was lost)."""
        outcomes: list[tuple[Any, BaseException | None]] = [
            (None, StoreError("write was not attempted"))
        ] * len(batch)
        try:
            connection = self._begin(connection)
            outcomes = self._run_batch(connection, batch)
        except Exception as exc:  # every waiter must get an answer
            log.error("store commit of %d writes failed: %r", len(batch), exc)
            if not connection.broken and not connection.closed:
                try:
                    connection.execute("ROLLBACK")
                except psycopg.Error as rollback_error:
                    log.error("store rollback failed too: %s", rollback_error)
            failure = _job_error(exc, "commit failed")
            outcomes = [(None, failure)] * len(batch)
        finally:
            for (_, future, loop), (result, error) in zip(batch, outcomes, strict=True):
                try:
                    loop.call_soon_threadsafe(settle, future, result, error)
                except RuntimeError:
                    pass  # the loop that waited is gone; nothing is left to answer
        return connection

    def _begin(self, connection: psycopg.Connection) -> psycopg.Connection:
        """BEGIN, on a new connection when this one was lost while idle (a server restart,
        a failover, an idle timeout): nothing ran yet, so trying again is safe. A
        connection lost later fails its batch; the next batch reconnects here."""
        if not connection.broken and not connection.closed:
            try:
                connection.execute("BEGIN")
                return connection
            except psycopg.OperationalError as exc:
                if not connection.broken:
                    raise
                log.warning("store connection lost (%s); reconnecting", exc)
            connection.close()
        connection = _connect(self.url)
        connection.execute("BEGIN")
        return connection

    def _run_batch(
        self, connection: psycopg.Connection, batch: list[_Job]
    ) -> list[tuple[Any, BaseException | None]]:
        """Each job in a savepoint, then COMMIT; the transaction is already begun."""
        outcomes: list[tuple[Any, BaseException | None]] = []
        for operation, _, _ in batch:
            connection.execute("SAVEPOINT job")
            try:
                outcomes.append((operation(connection), None))
                connection.execute("RELEASE SAVEPOINT job")
            except Exception as exc:  # one failed write fails only itself
                if connection.broken:
                    raise
                connection.execute("ROLLBACK TO SAVEPOINT job")
                connection.execute("RELEASE SAVEPOINT job")
                outcomes.append((None, _job_error(exc, "write failed")))
        connection.execute("COMMIT")
        self.commits += 1
        return outcomes

    async def _write(self, operation: Callable[[psycopg.Connection], T]) -> T:
        if self._closed:
            raise StoreError("the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((operation, future, loop))
        return await future

    # -- readers --------------------------------------------------------------------
    def _reader(self) -> psycopg.Connection:
        connection: psycopg.Connection | None = getattr(self._local, "connection", None)
        if connection is None or connection.closed or connection.broken:
            if connection is not None:
                connection.close()
            connection = _connect(self.url)
            self._local.connection = connection
            self._reader_connections.append(connection)
        return connection

    async def _read(self, operation: Callable[[psycopg.Connection], T]) -> T:
        def run() -> T:
            try:
                connection = self._reader()
                try:
                    return operation(connection)
                except psycopg.OperationalError:
                    if not connection.broken:
                        raise
                    return operation(self._reader())  # lost while idle: a read may retry
            except psycopg.Error as exc:
                raise StoreError(f"read failed: {_one_line(exc)}") from exc

        return await asyncio.get_running_loop().run_in_executor(self._readers, run)

    # -- Store: the rows are ``store_rows.RowStore``'s (no cache: another manager may
    # change a row) --------------------------------------------------------------------
    async def size_bytes(self) -> int:
        def read(connection: psycopg.Connection) -> int:
            row = connection.execute(
                "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = current_schema() AND c.relname = ANY(%s)",
                (list(_TABLES),),
            ).fetchone()
            return 0 if row is None else int(row[0])

        return await self._read(read)

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
    """What a waiter gets: our own errors as they are, PostgreSQL's as StoreError (503)."""
    if isinstance(exc, TxManagerError):
        return exc
    if isinstance(exc, psycopg.Error):
        return StoreError(f"{what}: {_one_line(exc)}")
    return exc


def _one_line(exc: BaseException) -> str:
    """libpq's messages run over several lines (with a hint); a log line and a 503 take one."""
    return " ".join(str(exc).split())
