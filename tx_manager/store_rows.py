"""Every read and write of the store's rows (envelopes, their sealed bodies, raw
transactions, commitments), written once for both backends.

``SqliteStore`` and ``PostgresStore`` differ in how they connect, batch writes into
transactions and serve reads (``store``, ``pg_store``); what they store and how is here.
The few differences of SQL dialect are a ``Dialect``: the parameter marker, the row lock
a read-modify-write takes (PostgreSQL's ``FOR UPDATE``; SQLite's one writer needs none),
and what serialises commitment inserts across processes (PostgreSQL's advisory lock, so
that sequence numbers follow commit order when two managers share a database).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, TypeVar

from quorum_shared.commitments import GroupCommitment
from tx_manager.commitment_messages import StoredCommitment
from tx_manager.errors import (
    CommitmentConflict,
    EnvelopeConflict,
    EnvelopeDecodeError,
    StoreError,
)
from tx_manager.payload import Envelope, Raw, b64encode, decode_envelope, decode_raw

COMMITMENT_COLUMNS = "seq, own, members, commitment"


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> Sequence[Any]: ...


class Connection(Protocol):
    def execute(self, query: Any, params: Any = ...) -> Any: ...


@dataclass(frozen=True)
class Dialect:
    placeholder: str  # "?" (sqlite3) or "%s" (psycopg)
    row_lock: str  # appended to the SELECT of a row about to be rewritten
    serialise_commitments: Callable[[Connection], None]  # before commitments are inserted

    def run(self, connection: Connection, query: str, params: Sequence[Any] = ()) -> Any:
        """``query`` is written with ``?`` markers and ``{lock}`` where a row lock goes."""
        query = query.replace("{lock}", self.row_lock)
        if self.placeholder != "?":
            query = query.replace("?", self.placeholder)
        return connection.execute(query, params)


def height_bytes(block_number: int) -> bytes:
    """A block number as stored: 8 big-endian bytes (SQLite's integers stop at 2^63-1)."""
    return block_number.to_bytes(8, "big")


def commitment_row(row: Sequence[Any]) -> StoredCommitment:
    """A stored commitment from a (seq, own, members, commitment) row."""
    return StoredCommitment(
        seq=int(row[0]),
        own=bool(row[1]),
        members=tuple(json.loads(row[2])),
        commitment=GroupCommitment.from_json(json.loads(row[3])),
    )


# --- envelopes --------------------------------------------------------------------------


def save_envelopes(
    sql: Dialect, connection: Connection, envelopes: list[Envelope]
) -> list[tuple[bytes, Envelope]]:
    """Insert new envelopes, merge a copy's boxes into a stored one; what is stored now."""
    stored: list[tuple[bytes, Envelope]] = []
    for envelope in envelopes:
        tx_hash = envelope.hash
        inserted = sql.run(
            connection,
            "INSERT INTO envelopes (hash, data) VALUES (?, ?) ON CONFLICT (hash) DO NOTHING",
            (tx_hash, envelope.to_bytes()),
        ).rowcount
        if inserted:  # the common case: a new transaction
            _claim_body(sql, connection, envelope)
            stored.append((tx_hash, envelope))
            continue
        row = sql.run(
            connection, "SELECT data FROM envelopes WHERE hash = ?{lock}", (tx_hash,)
        ).fetchone()
        if row is None:
            raise StoreError("an envelope was deleted while a copy was merged into it")
        existing = decode_envelope(bytes(row[0]))
        merged = existing.merged_with(envelope)
        if merged is not existing:
            sql.run(
                connection,
                "UPDATE envelopes SET data = ? WHERE hash = ?",
                (merged.to_bytes(), tx_hash),
            )
        stored.append((tx_hash, merged))
    return stored


def find_envelope(sql: Dialect, connection: Connection, tx_hash: bytes) -> Envelope | None:
    row = sql.run(connection, "SELECT data FROM envelopes WHERE hash = ?", (tx_hash,)).fetchone()
    return None if row is None else decode_envelope(bytes(row[0]))


def find_stored_copy(sql: Dialect, connection: Connection, envelope: Envelope) -> Envelope | None:
    """The stored envelope with this hash, or holding this sealed body under another."""
    found = find_envelope(sql, connection, envelope.hash)
    if found is not None or envelope.body_id is None:
        return found
    row = sql.run(
        connection,
        "SELECT e.data FROM envelope_bodies b JOIN envelopes e ON e.hash = b.hash"
        " WHERE b.body_id = ?",
        (envelope.body_id,),
    ).fetchone()
    return None if row is None else decode_envelope(bytes(row[0]))


def delete_envelope(sql: Dialect, connection: Connection, tx_hash: bytes) -> bool:
    row = sql.run(
        connection, "SELECT data FROM envelopes WHERE hash = ?{lock}", (tx_hash,)
    ).fetchone()
    if row is None:
        return False
    try:
        body_id = decode_envelope(bytes(row[0])).body_id
    except (EnvelopeDecodeError, TypeError):
        body_id = None  # a damaged row can still be deleted
    if body_id is not None:
        sql.run(
            connection,
            "DELETE FROM envelope_bodies WHERE body_id = ? AND hash = ?",
            (body_id, tx_hash),
        )
    sql.run(connection, "DELETE FROM envelopes WHERE hash = ?", (tx_hash,))
    return True


def page_envelopes(
    sql: Dialect, connection: Connection, after: bytes, limit: int
) -> list[Envelope]:
    rows = sql.run(
        connection,
        "SELECT data FROM envelopes WHERE hash > ? ORDER BY hash LIMIT ?",
        (after, limit),
    ).fetchall()
    return [decode_envelope(bytes(row[0])) for row in rows]


def count_envelopes(sql: Dialect, connection: Connection) -> int:
    row = sql.run(connection, "SELECT COUNT(*) FROM envelopes").fetchone()
    return 0 if row is None else int(row[0])


def _claim_body(sql: Dialect, connection: Connection, envelope: Envelope) -> None:
    """Record a new envelope's sealed payload; refuse it if stored under another hash."""
    body_id = envelope.body_id
    if body_id is None:
        return
    claimed = sql.run(
        connection,
        "INSERT INTO envelope_bodies (body_id, hash) VALUES (?, ?)"
        " ON CONFLICT (body_id) DO NOTHING",
        (body_id, envelope.hash),
    ).rowcount
    if claimed:
        return
    row = sql.run(
        connection, "SELECT hash FROM envelope_bodies WHERE body_id = ?", (body_id,)
    ).fetchone()
    if row is not None and bytes(row[0]) != envelope.hash:
        raise EnvelopeConflict(
            b64encode(bytes(row[0])),
            "the same sealed payload arrives under another header "
            f"(hash {b64encode(envelope.hash)})",
        )


# --- raw transactions -------------------------------------------------------------------


def save_raw(sql: Dialect, connection: Connection, raw: Raw) -> None:
    sql.run(
        connection,
        "INSERT INTO raw_transactions (hash, data) VALUES (?, ?)"
        " ON CONFLICT (hash) DO UPDATE SET data = EXCLUDED.data",
        (raw.hash, raw.to_bytes()),
    )


def find_raw(sql: Dialect, connection: Connection, tx_hash: bytes) -> Raw | None:
    row = sql.run(
        connection, "SELECT data FROM raw_transactions WHERE hash = ?", (tx_hash,)
    ).fetchone()
    return None if row is None else decode_raw(bytes(row[0]))


def delete_raw(sql: Dialect, connection: Connection, tx_hash: bytes) -> bool:
    return bool(
        sql.run(connection, "DELETE FROM raw_transactions WHERE hash = ?", (tx_hash,)).rowcount > 0
    )


# --- commitments ------------------------------------------------------------------------


def save_commitments(
    sql: Dialect, connection: Connection, records: list[StoredCommitment]
) -> list[StoredCommitment]:
    sql.serialise_commitments(connection)
    return [_insert_commitment(sql, connection, record) for record in records]


def find_own_commitment(
    sql: Dialect, connection: Connection, group_id: bytes, block_number: int, member: bytes
) -> StoredCommitment | None:
    row = sql.run(
        connection,
        # S608: COMMITMENT_COLUMNS is a constant of this module; every value is a parameter.
        f"SELECT {COMMITMENT_COLUMNS} FROM commitments"  # noqa: S608
        " WHERE group_id = ? AND block_number = ? AND member = ? AND own = ?",
        (group_id, height_bytes(block_number), member, True),
    ).fetchone()
    return None if row is None else commitment_row(row)


def page_commitments(
    sql: Dialect, connection: Connection, after_seq: int, limit: int
) -> list[StoredCommitment]:
    rows = sql.run(
        connection,
        # S608: COMMITMENT_COLUMNS is a constant of this module; every value is a parameter.
        f"SELECT {COMMITMENT_COLUMNS} FROM commitments WHERE seq > ? ORDER BY seq LIMIT ?",  # noqa: S608
        (after_seq, limit),
    ).fetchall()
    return [commitment_row(row) for row in rows]


def _insert_commitment(
    sql: Dialect, connection: Connection, record: StoredCommitment
) -> StoredCommitment:
    """Insert one commitment unless stored already; the stored record either way."""
    claim = record.commitment.claim
    if record.own:
        stored = find_own_commitment(
            sql, connection, claim.group_id, claim.block_number, claim.member
        )
        if stored is not None:
            if stored.commitment.claim.root != claim.root:
                raise CommitmentConflict(
                    f"this manager already signed root 0x{stored.commitment.claim.root.hex()}"
                    f" for group 0x{claim.group_id.hex()} at block {claim.block_number}"
                    f" as {b64encode(claim.member)}; it never signs a second root"
                )
            return stored
    key = (
        claim.group_id,
        height_bytes(claim.block_number),
        claim.member,
        claim.root,
        record.commitment.signer,
    )
    inserted = sql.run(
        connection,
        "INSERT INTO commitments (group_id, block_number, member, root, signer, commitment,"
        " own, members) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (group_id, block_number, member, root, signer) DO NOTHING RETURNING seq",
        (
            *key,
            json.dumps(record.commitment.to_json(), separators=(",", ":")),
            record.own,
            json.dumps(list(record.members)),
        ),
    ).fetchall()  # all, not one: sqlite3 keeps a RETURNING statement open until exhausted
    if inserted:
        return StoredCommitment(int(inserted[0][0]), record.own, record.members, record.commitment)
    row = sql.run(
        connection,
        # S608: COMMITMENT_COLUMNS is a constant of this module; every value is a parameter.
        f"SELECT {COMMITMENT_COLUMNS} FROM commitments WHERE group_id = ? AND block_number = ?"  # noqa: S608
        " AND member = ? AND root = ? AND signer = ?",
        key,
    ).fetchone()
    if row is None:
        raise StoreError("a commitment vanished between its insert and its read")
    return commitment_row(row)


T = TypeVar("T")


class RowStore:
    """The ``Store`` methods that only carry rows to and from the database, for a store
    that says how it reads (``_read``: any connection, off the event loop) and writes
    (``_write``: in its writer's next transaction, durable when it returns). A store
    with a cache overrides the envelope methods around these."""

    dialect: Dialect

    async def _read(self, operation: Callable[[Any], T]) -> T:
        raise NotImplementedError

    async def _write(self, operation: Callable[[Any], T]) -> T:
        raise NotImplementedError

    async def save_envelopes(self, envelopes: list[Envelope]) -> None:
        await self._write(partial(save_envelopes, self.dialect, envelopes=envelopes))

    async def find_envelope(self, tx_hash: bytes) -> Envelope | None:
        return await self._read(partial(find_envelope, self.dialect, tx_hash=tx_hash))

    async def find_stored_copy(self, envelope: Envelope) -> Envelope | None:
        return await self._read(partial(find_stored_copy, self.dialect, envelope=envelope))

    async def delete_envelope(self, tx_hash: bytes) -> bool:
        return await self._write(partial(delete_envelope, self.dialect, tx_hash=tx_hash))

    async def page_envelopes(self, after: bytes, limit: int) -> list[Envelope]:
        return await self._read(partial(page_envelopes, self.dialect, after=after, limit=limit))

    async def count_envelopes(self) -> int:
        return await self._read(partial(count_envelopes, self.dialect))

    async def save_raw(self, raw: Raw) -> None:
        await self._write(partial(save_raw, self.dialect, raw=raw))

    async def find_raw(self, tx_hash: bytes) -> Raw | None:
        return await self._read(partial(find_raw, self.dialect, tx_hash=tx_hash))

    async def delete_raw(self, tx_hash: bytes) -> bool:
        return await self._write(partial(delete_raw, self.dialect, tx_hash=tx_hash))

    async def save_commitments(self, records: list[StoredCommitment]) -> list[StoredCommitment]:
        return await self._write(partial(save_commitments, self.dialect, records=records))

    async def find_own_commitment(
        self, group_id: bytes, block_number: int, member: bytes
    ) -> StoredCommitment | None:
        return await self._read(
            partial(
                find_own_commitment,
                self.dialect,
                group_id=group_id,
                block_number=block_number,
                member=member,
            )
        )

    async def page_commitments(self, after_seq: int, limit: int) -> list[StoredCommitment]:
        return await self._read(
            partial(page_commitments, self.dialect, after_seq=after_seq, limit=limit)
        )
