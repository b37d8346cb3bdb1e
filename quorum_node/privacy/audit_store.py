"""The alarms this node raised, on disk (``DATADIR/audit.sqlite``), so that they are
listed again after a restart, and never raised (logged, pushed) twice.

One small SQLite file of its own, not the chain database: alarms are written whenever
they happen, outside any block's atomic write, and a chain wiped for a resync must not
take the alarms with it.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from quorum_node.privacy.audit import Alarm
from quorum_shared.commitments import GroupCommitment

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alarms (
    kind TEXT NOT NULL,
    group_id BLOB NOT NULL,
    height INTEGER NOT NULL,
    member BLOB NOT NULL,
    evidence TEXT NOT NULL,
    PRIMARY KEY (kind, group_id, height, member)
)
"""


class AlarmStore:
    def __init__(self, path: Path) -> None:
        self._connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=FULL")
        self._connection.execute(_SCHEMA)

    def save(self, alarm: Alarm) -> None:
        """Durable when it returns (an alarm is rare: one fsync each is cheap)."""
        evidence = json.dumps([c.to_json() for c in alarm.evidence])
        self._connection.execute(
            "INSERT OR IGNORE INTO alarms VALUES (?, ?, ?, ?, ?)",
            (alarm.kind, alarm.group_id, alarm.height, alarm.member, evidence),
        )

    def load(self) -> list[Alarm]:
        rows = self._connection.execute(
            "SELECT kind, group_id, height, member, evidence FROM alarms ORDER BY rowid"
        ).fetchall()
        return [
            Alarm(
                kind,
                bytes(group_id),
                height,
                bytes(member),
                tuple(GroupCommitment.from_json(item) for item in json.loads(evidence)),
            )
            for kind, group_id, height, member, evidence in rows
        ]

    def close(self) -> None:
        self._connection.close()
