"""Block import on each storage backend: SQLite vs LevelDB vs py-evm in memory.

Why: ``quorum_node.chain.db`` needs one on-disk engine; this chooses it on the
node's real workload instead of a key/value microbenchmark. Blocks of plain
value transfers are built once on py-evm's in-memory ``AtomicDB`` (signing and
building outside all timings), then every backend imports exactly the same
blocks into a fresh chain with ``chain.import_block`` (what a follower does:
sender recovery, execution, trie hashing, persisting). Each backend also
builds its own blocks with ``MiningChain.mine_all`` (what the leader does).

Backends: py-evm ``AtomicDB`` (baseline), ``SqliteDB`` with
``synchronous=FULL`` and ``NORMAL``, and LevelDB through plyvel with
``WriteBatch(sync=True)``; each disk backend both plain (py-evm's own
batches, one commit each) and with one ``batch_scope`` per block (one commit
per block). The LevelDB adapter reuses ``OverlayAtomicDB`` so both engines get
identical batch semantics and only the engine differs.

Run: ``python -m bench.db_bench [--blocks N] [--txs-per-block M]``; writes
``bench/results/db_bench.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from eth.abc import AtomicDatabaseAPI, BlockAPI, SignedTransactionAPI
from eth.chains.base import MiningChain
from eth.consensus.noproof import NoProofConsensus
from eth.db.atomic import AtomicDB
from eth.typing import AccountState
from eth.vm.forks.prague import PragueVM
from eth_keys.backends import get_default_backend_class
from eth_keys.datatypes import PrivateKey
from eth_typing import Address

from quorum_node.chain.db import OverlayAtomicDB, PendingWrites, SqliteDB

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "db_bench.json"
CHAIN_ID = 1337
GENESIS_PARAMS: dict[str, Any] = {
    "difficulty": 0,
    "gas_limit": 30_000_000,
    "timestamp": 1_700_000_000,
}
#: Recipients start far above the precompile addresses 0x01..0x11.
RECIPIENT_BASE = 0xAA << 152
GAS_PRICE = 10**10

BenchVM = PragueVM.configure(consensus_class=NoProofConsensus)
BenchChain = MiningChain.configure(
    __name__="DbBenchChain", vm_configuration=((0, BenchVM),), chain_id=CHAIN_ID
)


class LevelDB(OverlayAtomicDB):
    """LevelDB via plyvel, with the same batch semantics as ``SqliteDB``.

    Every commit is one ``WriteBatch(sync=True)``: durable at return, the
    same promise as SQLite's WAL with ``synchronous=FULL``.
    """

    def __init__(self, path: Path) -> None:
        import plyvel  # only this benchmark needs LevelDB

        super().__init__()
        self._db = plyvel.DB(str(path), create_if_missing=True)

    def _read_committed(self, key: bytes) -> bytes | None:
        value: bytes | None = self._db.get(key)
        return value

    def _commit(self, writes: PendingWrites) -> None:
        with self._db.write_batch(sync=True) as batch:
            for key, value in writes.items():
                if value is None:
                    batch.delete(key)
                else:
                    batch.put(key, value)

    def close(self) -> None:
        """Release the LevelDB lock so the directory can be removed."""
        self._db.close()


class CommitCounter:
    """Wraps a backend's ``_commit`` and ``_read_committed`` to count calls.

    Used in a separate, untimed pass so the counting never skews timings.
    """

    def __init__(self, database: OverlayAtomicDB) -> None:
        self.commits = 0
        self.keys_written = 0
        self.reads = 0
        commit = database._commit
        read = database._read_committed

        def counting_commit(writes: PendingWrites) -> None:
            self.commits += 1
            self.keys_written += len(writes)
            commit(writes)

        def counting_read(key: bytes) -> bytes | None:
            self.reads += 1
            return read(key)

        database._commit = counting_commit  # type: ignore[method-assign]
        database._read_committed = counting_read  # type: ignore[method-assign]


@dataclass(frozen=True)
class Backend:
    """One way to store the chain: how to open it and whether to scope blocks."""

    name: str
    open: Callable[[Path], AtomicDatabaseAPI]
    scope_per_block: bool = False


def _open_memory(directory: Path) -> AtomicDatabaseAPI:
    return AtomicDB()


def _open_sqlite_full(directory: Path) -> AtomicDatabaseAPI:
    return SqliteDB(directory / "chain.sqlite", synchronous="FULL")


def _open_sqlite_normal(directory: Path) -> AtomicDatabaseAPI:
    return SqliteDB(directory / "chain.sqlite", synchronous="NORMAL")


def _open_leveldb(directory: Path) -> AtomicDatabaseAPI:
    return LevelDB(directory / "chain.leveldb")


BACKENDS: tuple[Backend, ...] = (
    Backend("memory_atomicdb", _open_memory),
    Backend("sqlite_wal_full", _open_sqlite_full),
    Backend("sqlite_wal_full_scope", _open_sqlite_full, scope_per_block=True),
    Backend("sqlite_wal_normal", _open_sqlite_normal),
    Backend("leveldb_sync", _open_leveldb),
    Backend("leveldb_sync_scope", _open_leveldb, scope_per_block=True),
)


@dataclass(frozen=True)
class Workload:
    """Keys, genesis state, pre-signed transactions and the built blocks."""

    private_keys: tuple[PrivateKey, ...]
    genesis_state: AccountState
    transactions: tuple[tuple[SignedTransactionAPI, ...], ...]
    blocks: tuple[BlockAPI, ...]

    @property
    def transaction_count(self) -> int:
        return sum(len(block_txs) for block_txs in self.transactions)


def build_workload(block_count: int, txs_per_block: int) -> Workload:
    """Sign every transfer up front and build the blocks once in memory.

    One sender per transaction slot, so each sender's nonce equals the block
    index; recipients are fresh addresses, so every transfer creates an
    account (a trie insert), the costly case for storage.
    """
    private_keys = tuple(
        PrivateKey((index + 1).to_bytes(32, "big")) for index in range(txs_per_block)
    )
    genesis_state: AccountState = {
        Address(key.public_key.to_canonical_address()): {
            "balance": 10**24,
            "nonce": 0,
            "code": b"",
            "storage": {},
        }
        for key in private_keys
    }
    chain = _new_chain(AtomicDB(), genesis_state)
    vm = chain.get_vm()
    transactions = tuple(
        tuple(
            vm.create_unsigned_transaction(
                nonce=block_index,
                gas_price=GAS_PRICE,
                gas=21_000,
                to=Address(
                    (RECIPIENT_BASE + block_index * txs_per_block + tx_index).to_bytes(20, "big")
                ),
                value=1,
                data=b"",
            ).as_signed_transaction(key, chain_id=CHAIN_ID)
            for tx_index, key in enumerate(private_keys)
        )
        for block_index in range(block_count)
    )
    blocks = []
    for block_txs in transactions:
        result, _, computations = chain.mine_all(block_txs)
        failed = [computation for computation in computations if computation.is_error]
        if failed:
            raise RuntimeError(f"workload transaction failed: {failed[0].error!r}")
        blocks.append(result.imported_block)
    return Workload(private_keys, genesis_state, transactions, tuple(blocks))


def _new_chain(database: AtomicDatabaseAPI, genesis_state: AccountState) -> MiningChain:
    """A fresh benchmark chain at genesis on ``database``."""
    return cast(MiningChain, BenchChain.from_genesis(database, GENESIS_PARAMS, genesis_state))


def _block_scope(
    database: AtomicDatabaseAPI, enabled: bool
) -> contextlib.AbstractContextManager[None]:
    """One commit per block when the backend supports and wants it."""
    if enabled and isinstance(database, OverlayAtomicDB):
        return database.batch_scope()
    return contextlib.nullcontext()


@contextlib.contextmanager
def _fresh_database(backend: Backend) -> Iterator[AtomicDatabaseAPI]:
    """Open the backend in a new directory on the real disk; clean up after."""
    directory = Path(tempfile.mkdtemp(prefix=f"db_bench_{backend.name}_"))
    database = backend.open(directory)
    try:
        yield database
    finally:
        close = getattr(database, "close", None)
        if close is not None:
            close()
        shutil.rmtree(directory, ignore_errors=True)


def _directory_bytes(database: AtomicDatabaseAPI) -> int | None:
    """Size on disk of a disk backend, for the record."""
    if isinstance(database, SqliteDB):
        return sum(p.stat().st_size for p in database.path.parent.iterdir())
    return None


def time_import(backend: Backend, workload: Workload) -> dict[str, Any]:
    """Import the prebuilt blocks into a fresh chain; return timing figures."""
    with _fresh_database(backend) as database:
        chain = _new_chain(database, workload.genesis_state)
        started = time.perf_counter()
        for block in workload.blocks:
            with _block_scope(database, backend.scope_per_block):
                chain.import_block(block)
        elapsed = time.perf_counter() - started
        head = chain.get_canonical_head()
        if head.hash != workload.blocks[-1].hash:
            raise RuntimeError(f"{backend.name}: imported head differs from built head")
        return {
            "seconds": round(elapsed, 3),
            "tx_per_s": round(workload.transaction_count / elapsed, 1),
            "ms_per_block": round(1000 * elapsed / len(workload.blocks), 2),
            "bytes_on_disk": _directory_bytes(database),
        }


def time_build(backend: Backend, workload: Workload) -> dict[str, Any]:
    """Build the same blocks with ``mine_all`` on the backend (leader path)."""
    with _fresh_database(backend) as database:
        chain = _new_chain(database, workload.genesis_state)
        started = time.perf_counter()
        for block_txs in workload.transactions:
            with _block_scope(database, backend.scope_per_block):
                chain.mine_all(block_txs)
        elapsed = time.perf_counter() - started
        return {
            "seconds": round(elapsed, 3),
            "tx_per_s": round(workload.transaction_count / elapsed, 1),
        }


def count_commits(workload: Workload, scope_per_block: bool, blocks: int = 10) -> dict[str, Any]:
    """Commits, keys and committed-store reads per imported block (untimed)."""
    backend = Backend("count", _open_sqlite_full, scope_per_block)
    with _fresh_database(backend) as database:
        if not isinstance(database, OverlayAtomicDB):
            raise TypeError("counting needs an OverlayAtomicDB")
        chain = _new_chain(database, workload.genesis_state)
        counter = CommitCounter(database)
        sample = workload.blocks[:blocks]
        for block in sample:
            with _block_scope(database, scope_per_block):
                chain.import_block(block)
        return {
            "commits_per_block": counter.commits / len(sample),
            "keys_written_per_block": counter.keys_written / len(sample),
            "store_reads_per_block": counter.reads / len(sample),
        }


def run(block_count: int, txs_per_block: int, with_build: bool, repeats: int) -> dict[str, Any]:
    """Run every backend on one workload and return the JSON-ready result.

    Import runs are interleaved across backends ``repeats`` times so that
    drift of a shared machine hits all backends alike; the best run counts.
    """
    started = time.perf_counter()
    workload = build_workload(block_count, txs_per_block)
    prepare_seconds = time.perf_counter() - started
    runs: dict[str, list[dict[str, Any]]] = {backend.name: [] for backend in BACKENDS}
    for round_number in range(repeats):
        for backend in BACKENDS:
            timing = time_import(backend, workload)
            runs[backend.name].append(timing)
            print(
                f"round {round_number} {backend.name:24s} import {timing['tx_per_s']:8.1f} tx/s",
                flush=True,
            )
    results: dict[str, Any] = {}
    for backend in BACKENDS:
        best = max(runs[backend.name], key=lambda timing: float(timing["tx_per_s"]))
        entry: dict[str, Any] = {
            "import": dict(best, all_runs_tx_per_s=[t["tx_per_s"] for t in runs[backend.name]])
        }
        if with_build:
            entry["build"] = time_build(backend, workload)
            print(f"{backend.name:24s} build  {entry['build']['tx_per_s']:8.1f} tx/s", flush=True)
        results[backend.name] = entry
    baseline = results["memory_atomicdb"]["import"]["tx_per_s"]
    for entry in results.values():
        entry["import"]["vs_memory"] = round(entry["import"]["tx_per_s"] / baseline, 3)
    sqlite = results["sqlite_wal_full_scope"]["import"]["tx_per_s"]
    leveldb = results["leveldb_sync_scope"]["import"]["tx_per_s"]
    return {
        "benchmark": "db_bench",
        "workload": {
            "blocks": block_count,
            "txs_per_block": txs_per_block,
            "transactions": workload.transaction_count,
            "kind": "legacy value transfers to fresh accounts",
            "vm": "PragueVM + NoProofConsensus",
            "prepare_seconds": round(prepare_seconds, 1),
            "import_repeats": repeats,
        },
        "environment": {
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "ecc_backend": str(get_default_backend_class()),
            "machine": platform.machine(),
        },
        "results": results,
        "sqlite_over_leveldb_import": round(sqlite / leveldb, 3),
        "import_commit_counts": {
            "plain": count_commits(workload, scope_per_block=False),
            "batch_scope_per_block": count_commits(workload, scope_per_block=True),
        },
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Entry point for ``python -m bench.db_bench`` and ``bench.run_all``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--blocks", type=int, default=200)
    parser.add_argument("--txs-per-block", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2, help="interleaved import rounds")
    parser.add_argument("--no-build", action="store_true", help="time import only")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    args = parser.parse_args(argv)
    result = run(
        args.blocks, args.txs_per_block, with_build=not args.no_build, repeats=args.repeats
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["import_commit_counts"], indent=2))
    print(f"sqlite/leveldb import ratio: {result['sqlite_over_leveldb_import']}")
    print(f"wrote {args.output}")
    return result


if __name__ == "__main__":
    main()
