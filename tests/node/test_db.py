"""Tests of the persistent chain database (``quorum_node.chain.db``).

py-evm's own conformance suites define what an atomic database must do; we
run them unchanged. On top: scopes, threads, reopening, and durability
across a real kill -9 of a writing process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth.tools.db.atomic import AtomicDatabaseBatchAPITestSuite
from eth.tools.db.base import DatabaseAPITestSuite

from quorum_node.chain.db import ClosedDatabaseError, NestedScopeError, SqliteDB


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[SqliteDB]:
    database = SqliteDB(tmp_path / "chain.sqlite")
    yield database
    database.close()


@pytest.fixture
def db(sqlite_db: SqliteDB) -> SqliteDB:
    """The fixture name py-evm's ``DatabaseAPITestSuite`` asks for."""
    return sqlite_db


@pytest.fixture
def atomic_db(sqlite_db: SqliteDB) -> SqliteDB:
    """The fixture name py-evm's ``AtomicDatabaseBatchAPITestSuite`` asks for."""
    return sqlite_db


class TestSqliteDatabaseAPI(DatabaseAPITestSuite):
    """py-evm's key/value conformance suite against SqliteDB."""


class TestSqliteAtomicBatchAPI(AtomicDatabaseBatchAPITestSuite):
    """py-evm's atomic-batch conformance suite against SqliteDB."""


class TestSqliteInsideScopeDatabaseAPI(DatabaseAPITestSuite):
    """The same key/value suite while a ``batch_scope`` is open: same answers."""

    @pytest.fixture
    def db(self, sqlite_db: SqliteDB) -> Iterator[SqliteDB]:
        with sqlite_db.batch_scope():
            yield sqlite_db


class TestSqliteInsideScopeAtomicBatchAPI(AtomicDatabaseBatchAPITestSuite):
    """The atomic-batch suite while a ``batch_scope`` is open: same answers."""

    @pytest.fixture
    def atomic_db(self, sqlite_db: SqliteDB) -> Iterator[SqliteDB]:
        with sqlite_db.batch_scope():
            yield sqlite_db


def test_reopen_keeps_committed_data(tmp_path: Path) -> None:
    path = tmp_path / "chain.sqlite"
    with SqliteDB(path) as first:
        first[b"plain"] = b"1"
        with first.atomic_batch() as batch:
            batch[b"batched"] = b"2"
        with first.batch_scope():
            first[b"scoped"] = b"3"
            with first.atomic_batch() as batch:
                batch[b"scoped-batch"] = b"4"
        first[b"deleted"] = b"x"
        del first[b"deleted"]
    with SqliteDB(path) as second:
        assert second[b"plain"] == b"1"
        assert second[b"batched"] == b"2"
        assert second[b"scoped"] == b"3"
        assert second[b"scoped-batch"] == b"4"
        assert b"deleted" not in second


def test_scope_commits_everything_or_nothing(sqlite_db: SqliteDB) -> None:
    sqlite_db[b"kept"] = b"before"

    class Abort(Exception):
        pass

    with pytest.raises(Abort):
        with sqlite_db.batch_scope():
            sqlite_db[b"kept"] = b"changed"
            del sqlite_db[b"kept"]
            with sqlite_db.atomic_batch() as batch:
                batch[b"new"] = b"1"
            assert b"new" in sqlite_db
            raise Abort
    assert sqlite_db[b"kept"] == b"before"
    assert b"new" not in sqlite_db


def test_scope_is_invisible_to_other_threads_until_commit(sqlite_db: SqliteDB) -> None:
    seen: list[bytes | None] = []

    def read_from_rpc_thread() -> None:
        seen.append(sqlite_db.get(b"head"))

    sqlite_db[b"head"] = b"block-1"
    with sqlite_db.batch_scope():
        sqlite_db[b"head"] = b"block-2"
        reader = threading.Thread(target=read_from_rpc_thread)
        reader.start()
        reader.join(timeout=5)
        assert sqlite_db[b"head"] == b"block-2"
    reader = threading.Thread(target=read_from_rpc_thread)
    reader.start()
    reader.join(timeout=5)
    assert seen == [b"block-1", b"block-2"]


def test_scopes_do_not_nest(sqlite_db: SqliteDB) -> None:
    with sqlite_db.batch_scope():
        with pytest.raises(NestedScopeError):
            with sqlite_db.batch_scope():
                pass


def test_use_after_close_raises(tmp_path: Path) -> None:
    database = SqliteDB(tmp_path / "chain.sqlite")
    database[b"k"] = b"v"
    database.close()
    with pytest.raises(ClosedDatabaseError):
        database.get(b"k")


def test_concurrent_readers_during_writes(sqlite_db: SqliteDB) -> None:
    """Readers in other threads see only whole batches, never half of one."""
    keys = [b"a", b"b", b"c"]
    stop = threading.Event()
    torn: list[tuple[bytes | None, ...]] = []

    def reader() -> None:
        while not stop.is_set():
            # Two reads are two snapshots, but rounds only grow: reading "c"
            # after "a" must give a round at least as new, unless a batch
            # became visible with "a" written and "c" not yet.
            first = sqlite_db.get(b"a")
            last = sqlite_db.get(b"c")
            if first is not None and (last is None or int(last) < int(first)):
                torn.append((first, last))

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        for round_number in range(200):
            with sqlite_db.atomic_batch() as batch:
                for key in keys:
                    batch[key] = str(round_number).encode()
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)
    assert torn == []


_WRITER = """
import sys
from quorum_node.chain.db import SqliteDB

path, keys_per_batch = sys.argv[1], int(sys.argv[2])
db = SqliteDB(path)
batch_id = 0
while True:
    if batch_id % 2 == 0:
        with db.atomic_batch() as batch:
            for index in range(keys_per_batch):
                batch[b"batch-%d-%d" % (batch_id, index)] = b"v" * 64
    else:
        # the node's block import shape: unbatched writes and several
        # py-evm batches inside one scope
        with db.batch_scope():
            for index in range(keys_per_batch // 2):
                db[b"batch-%d-%d" % (batch_id, index)] = b"v" * 64
            for index in range(keys_per_batch // 2, keys_per_batch):
                with db.atomic_batch() as batch:
                    batch[b"batch-%d-%d" % (batch_id, index)] = b"v" * 64
    print(batch_id, flush=True)
    batch_id += 1
"""


@pytest.mark.slow
@pytest.mark.timeout(30)
def test_every_reported_batch_survives_kill_9(tmp_path: Path) -> None:
    """A batch reported committed is whole after kill -9; none is partial."""
    path = tmp_path / "chain.sqlite"
    keys_per_batch = 20
    wanted_reports = 60
    repo_root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(repo_root))
    child = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path), str(keys_per_batch)],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    reported: list[int] = []
    try:
        assert child.stdout is not None
        deadline = time.monotonic() + 20
        while len(reported) < wanted_reports:
            if time.monotonic() > deadline:
                pytest.fail(f"writer reported only {len(reported)} batches in 20 s")
            line = child.stdout.readline()
            if not line:
                pytest.fail(f"writer exited early with code {child.wait(timeout=5)}")
            reported.append(int(line))
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=5)
        if child.stdout is not None:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL

    with SqliteDB(path) as reopened:
        present: dict[int, int] = {}
        for batch_id in range(reported[-1] + 200):
            count = sum(
                b"batch-%d-%d" % (batch_id, index) in reopened for index in range(keys_per_batch)
            )
            if count:
                present[batch_id] = count
    assert reported == list(range(len(reported)))
    for batch_id in reported:
        assert present.get(batch_id) == keys_per_batch, f"reported batch {batch_id} incomplete"
    partial = {batch_id: n for batch_id, n in present.items() if n != keys_per_batch}
    assert partial == {}, f"partially present batches: {partial}"
    # batches are sequential: anything beyond the reports is one contiguous run
    assert sorted(present) == list(range(len(present)))
