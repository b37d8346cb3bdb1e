"""What the journal of acknowledged sends costs per send (issue 27).

A node journals every transaction its own clients send (``local_transactions``) in the
same trip to the chain thread that admits it, one SQLite commit (WAL, synchronous=FULL:
an fsync) per trip. This measures, in one process and one run, a ``Node`` on a real
SQLite file admitting transfers as ``eth_sendRawTransaction`` does, with the journal
(``local=True``) and without it (``local=False``, how a peer's forward is admitted):

* one send at a time (a lone client: every send is its own trip and its own commit);
* 32 sends at once (concurrent clients: one trip and one commit for all of them).

It reports wall time and process CPU per send for each, and the differences: the cost
of the journal. Signing happens before the timings; the pool is emptied by sealing a
block between rounds (outside the timings).

Run: ``python -m bench.journal_bench [--n N]``; writes ``bench/results/journal_bench.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eth.abc import SignedTransactionAPI

from quorum_node.accounts import AccountStore
from quorum_node.chain.db import SqliteDB
from quorum_node.chain.service import ChainService
from quorum_node.local_transactions import LocalTransactions
from quorum_node.node import Node
from tests.support.inproc import COINBASE, KEYS, genesis, transfer

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "journal_bench.json"
BATCH = 32


async def measure(n: int, folder: Path) -> dict[str, Any]:
    db = SqliteDB(folder / "chain.sqlite")
    node = Node(ChainService(db, genesis()), AccountStore(), COINBASE, None, LocalTransactions(db))
    await node.replay_local_transactions()  # an empty journal: sends may go at once
    nonces = dict.fromkeys(range(len(KEYS)), 0)
    results: dict[str, Any] = {}
    try:
        for mode in ("one at a time", f"{BATCH} at once"):
            for local in (False, True, False, True):  # twice each, interleaved
                transactions = []
                for index in range(n):
                    key = index % len(KEYS)
                    transactions.append(transfer(KEYS[key], nonces[key]))
                    nonces[key] += 1
                wall, cpu = await _send(
                    node, transactions, local, 1 if mode == "one at a time" else BATCH
                )
                await node.produce_block(allow_empty=False)  # empty the pool, untimed
                while node.has_executable_transactions():
                    await node.produce_block(allow_empty=False)
                entry = results.setdefault(mode, {}).setdefault(
                    "journal" if local else "no journal", {"wall_ms": [], "cpu_ms": []}
                )
                entry["wall_ms"].append(round(wall / n * 1000, 4))
                entry["cpu_ms"].append(round(cpu / n * 1000, 4))
        for figures in results.values():
            on, off = figures["journal"], figures["no journal"]
            figures["journal cost per send"] = {
                "wall_ms": round(min(on["wall_ms"]) - min(off["wall_ms"]), 4),
                "cpu_ms": round(min(on["cpu_ms"]) - min(off["cpu_ms"]), 4),
            }
    finally:
        await node.close()
        db.close()
    return results


async def _send(
    node: Node, transactions: list[SignedTransactionAPI], local: bool, at_once: int
) -> tuple[float, float]:
    started, cpu_started = time.perf_counter(), time.process_time()
    for start in range(0, len(transactions), at_once):
        chunk = transactions[start : start + at_once]
        await asyncio.gather(*(node.submit(tx, local=local) for tx in chunk))
    return time.perf_counter() - started, time.process_time() - cpu_started


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="what journaling a send costs")
    parser.add_argument("--n", type=int, default=1_000, help="sends per measured round")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        figures = asyncio.run(measure(args.n, Path(folder)))
    report = {
        "benchmark": "journal_bench",
        "sends_per_round": args.n,
        "python": platform.python_version(),
        "results": figures,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
