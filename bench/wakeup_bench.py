"""What another thread's wake-ups cost a thread that executes blocks.

A node's chain thread executes blocks while its event loop and pysyncobj's thread wake
for their own work; each wake takes the GIL from the chain thread. This seals the same
ERC20 transfers (blocks of 15, ``ChainService.seal_block`` on SQLite, as a node stores
them) in a fresh process per run, alone and beside a thread that wakes every N ms and
does about 10 µs of work, and compares the sealing thread's own CPU per transaction
(``time.thread_time``) and its context switches. Runs alternate so that the machine's
load falls on every mode alike. Writes ``bench/results/wakeup_bench.json``::

    python -m bench.wakeup_bench            # about 2 minutes (3 rounds)
    python -m bench.wakeup_bench --quick    # about 20 seconds, one round: noisy
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RESULTS_PATH = Path(__file__).parent / "results" / "wakeup_bench.json"
#: Wake periods tried (ms); 0 is the sealing thread alone.
PERIODS_MS = (0, 1, 5, 25)
BLOCK_TRANSACTIONS = 15


def seal_once(period_ms: float, transactions: int) -> dict[str, Any]:
    """One run in this process: the sealing thread's CPU per transaction."""
    from bench.network_bench import raw_genesis
    from bench.node_bench import decoded, erc20_workload, sender_keys
    from quorum_node.chain.db import SqliteDB
    from quorum_node.chain.genesis import Genesis
    from quorum_node.chain.service import ChainService
    from quorum_node.chain.vm import QuorumVM

    keys = sender_keys(60)
    workload = erc20_workload(keys, transactions, Genesis().chain_id)
    folder = Path(tempfile.mkdtemp(prefix="wakeup_bench_"))
    service = ChainService(SqliteDB(folder / "chain.sqlite"), raw_genesis(Genesis(), keys))
    builder = QuorumVM.get_transaction_builder()

    def seal(pending: list[Any], per_block: int) -> None:
        while pending:
            committed = service.seal_block(
                pending[:per_block], timestamp=int(time.time()), coinbase=b"\x00" * 20
            )
            if any(record.status != 1 for record in committed.records):
                raise RuntimeError("a transfer failed")
            pending = list(committed.deferred) + pending[per_block:]

    seal(decoded(workload.setup, builder), 200)
    measured = decoded(workload.measured, builder)
    stop = threading.Event()

    def wake() -> None:
        total = 0
        while not stop.wait(period_ms / 1000):
            for step in range(200):
                total += step

    waker = threading.Thread(target=wake, daemon=True) if period_ms else None
    if waker is not None:
        waker.start()
    usage_before, cpu_before = resource.getrusage(resource.RUSAGE_THREAD), time.thread_time()
    seal(measured, BLOCK_TRANSACTIONS)
    cpu, usage = time.thread_time() - cpu_before, resource.getrusage(resource.RUSAGE_THREAD)
    stop.set()
    return {
        "period_ms": period_ms,
        "cpu_ms_per_tx": round(1000 * cpu / len(measured), 4),
        "user_s": round(usage.ru_utime - usage_before.ru_utime, 3),
        "system_s": round(usage.ru_stime - usage_before.ru_stime, 3),
        "voluntary_switches": usage.ru_nvcsw - usage_before.ru_nvcsw,
        "involuntary_switches": usage.ru_nivcsw - usage_before.ru_nivcsw,
    }


def run(transactions: int, rounds: int) -> dict[str, Any]:
    runs: dict[int, list[dict[str, Any]]] = {period: [] for period in PERIODS_MS}
    for _ in range(rounds):
        for period in PERIODS_MS:
            output = subprocess.run(
                [sys.executable, "-m", "bench.wakeup_bench", "--one", str(period)]
                + ["--transactions", str(transactions)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            runs[period].append(json.loads(output))
            print(f"wake every {period} ms: {runs[period][-1]}", flush=True)
    alone = statistics.median(r["cpu_ms_per_tx"] for r in runs[0])
    summary = {
        str(period): {
            "median_cpu_ms_per_tx": statistics.median(r["cpu_ms_per_tx"] for r in found),
            "over_alone": round(statistics.median(r["cpu_ms_per_tx"] for r in found) / alone, 3),
            "runs": found,
        }
        for period, found in runs.items()
    }
    return {
        "benchmark": "wakeup_bench",
        "transactions": transactions,
        "block_transactions": BLOCK_TRANSACTIONS,
        "rounds": rounds,
        "by_wake_period_ms": summary,
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--transactions", type=int)
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--one", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    args = parser.parse_args(argv)
    transactions = args.transactions or (1000 if args.quick else 2000)
    if args.one is not None:
        print(json.dumps(seal_once(args.one, transactions)))
        return None
    result = run(transactions, args.rounds or (1 if args.quick else 3))
    for period, entry in result["by_wake_period_ms"].items():
        print(f"wake every {period} ms: {entry['over_alone']} x the sealing thread alone")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")
    return result


if __name__ == "__main__":
    main()
