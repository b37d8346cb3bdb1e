"""Where a transaction's CPU goes across a network, from py-spy samples.

``python -m bench.network_bench --profile DIR`` samples every node and manager with
py-spy (``--format raw``: one collapsed stack per line with its count) during each timed
phase. This module sorts every sample into one kind of work by what its stack holds, and
prints, per phase, the CPU each kind costs per transaction across all processes::

    python -m bench.cpu_breakdown DIR --transactions public-erc20_transfers=5000 ...

The first rule that matches a stack wins, in this order: the manager (any sample of a
manager process), Raft (pysyncobj), signature recovery (eth_keys, coincurve), SQLite
(sqlite3 and the node's database module), execution (py-evm's VM, state and tries, the
block builder), node-to-node transfer (``quorum_node/p2p``, the Raft engine's block push
and fetch), JSON-RPC (``quorum_node/rpc``, aiohttp's server, json), RLP (encoding and
decoding outside execution: transactions and blocks on the wire), and the rest (the event
loop, the pool, logging). Samples whose innermost frame waits (poll, select, sleep,
a lock or a queue) are left out, so what remains is work; sample counts divided by the
rate approximate CPU seconds (the benchmark's own /proc CPU figures are the exact ones).
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SAMPLE_RATE = 200  # network_bench's py-spy --rate

KINDS = (
    "manager",
    "Raft (pysyncobj)",
    "signature recovery",
    "SQLite",
    "execution (py-evm)",
    "node-to-node transfer",
    "JSON-RPC",
    "RLP (wire)",
    "other (event loop, pool, logging)",
)

_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Raft (pysyncobj)", re.compile(r"pysyncobj")),
    ("signature recovery", re.compile(r"eth_keys|coincurve|recover_public_key|ecdsa")),
    ("SQLite", re.compile(r"sqlite3|quorum_node/chain/db\.py")),
    (
        "execution (py-evm)",
        re.compile(r"eth/vm/|eth/db/|/trie/|quorum_node/chain/builder\.py|apply_transaction"),
    ),
    ("node-to-node transfer", re.compile(r"quorum_node/p2p/|_push_to_majority|aiohttp/client")),
    ("JSON-RPC", re.compile(r"quorum_node/rpc/|aiohttp/web|/json/")),
    ("RLP (wire)", re.compile(r"/rlp/")),
)


def kind_of(stack: str, process: str) -> str:
    if process == "tm":
        return "manager"
    for kind, pattern in _RULES:
        if pattern.search(stack):
            return kind
    return "other (event loop, pool, logging)"


#: Leaf frames of a thread that waits (py-spy --nonblocking cannot tell idle threads).
IDLE_LEAF = re.compile(
    r"^(PollPoller\.poll|EpollSelector\.select|PollSelector\.select|select|poll|sleep|"
    r"Condition\.wait|Event\.wait|Semaphore\.acquire|SimpleQueue\.get|Queue\.get|"
    r"_worker|wait|acquire) "
)


def read_samples(path: Path) -> Counter[str]:
    """Sample counts per kind in one py-spy raw file (waiting threads left out)."""
    process = path.stem.rsplit("-", 1)[-1]  # PHASE-NAME-node or PHASE-NAME-tm
    counts: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        if IDLE_LEAF.match(stack.rsplit(";", 1)[-1]):
            continue
        counts[kind_of(stack, process)] += int(count)
    return counts


def breakdown(
    folder: Path, phase: str, transactions: int, measured_ms_per_tx: float | None = None
) -> dict[str, Any]:
    """CPU milliseconds per transaction by kind, summed over every process of ``phase``.

    Samples give each kind's share; with ``measured_ms_per_tx`` (the processes' CPU time
    per transaction from /proc, which the benchmark measures) the shares are applied to
    that, the exact total, instead of to the sample count (which counts a thread that
    waits for a core or the GIL as running)."""
    total: Counter[str] = Counter()
    per_process: dict[str, float] = {}
    for path in sorted(folder.glob(f"{phase}-*.txt")):
        counts = read_samples(path)
        total.update(counts)
        per_process[path.stem[len(phase) + 1 :]] = round(
            1000 * sum(counts.values()) / SAMPLE_RATE / transactions, 3
        )
    samples = sum(total.values()) or 1
    sampled_ms = 1000 * samples / SAMPLE_RATE / transactions
    total_ms = measured_ms_per_tx if measured_ms_per_tx is not None else sampled_ms
    return {
        "phase": phase,
        "transactions": transactions,
        "ms_per_tx": {kind: round(total_ms * total[kind] / samples, 3) for kind in KINDS},
        "share": {kind: round(total[kind] / samples, 3) for kind in KINDS},
        "sampled_ms_per_tx_by_process": per_process,
        "total_ms_per_tx": round(total_ms, 3),
        "total_from": "measured CPU time" if measured_ms_per_tx is not None else "samples",
    }


def markdown(tables: Sequence[dict[str, Any]]) -> str:
    header = "| kind of work | " + " | ".join(t["phase"] for t in tables) + " |"
    lines = [header, "|---|" + "---:|" * len(tables)]
    for kind in KINDS:
        cells = [f"{t['ms_per_tx'][kind]:.2f} ms ({100 * t['share'][kind]:.0f}%)" for t in tables]
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    lines.append(
        "| **all processes** | "
        + " | ".join(f"**{t['total_ms_per_tx']:.2f} ms**" for t in tables)
        + " |"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument(
        "--transactions",
        nargs="+",
        required=True,
        metavar="PHASE=N[:MS]",
        help="each profiled phase with its transaction count, and optionally the CPU "
        "milliseconds per transaction measured for it",
    )
    args = parser.parse_args(argv)
    tables = []
    for item in args.transactions:
        phase, _, figures = item.partition("=")
        count, _, measured = figures.partition(":")
        tables.append(
            breakdown(args.folder, phase, int(count), float(measured) if measured else None)
        )
    print(markdown(tables))
    (args.folder / "breakdown.json").write_text(json.dumps(tables, indent=2) + "\n")
    return tables


if __name__ == "__main__":
    main()
