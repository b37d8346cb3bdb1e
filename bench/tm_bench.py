"""Transaction manager throughput: durable /send and /transaction/{hash} reads.

Why: every private transaction costs one /send on the sender's manager (with
a push to each recipient's manager) and one read per party when blocks are
imported, so these two numbers bound the private transaction rate.

Setup: two real ``tx-manager`` processes on this machine (A sends, B receives),
SQLite with ``synchronous=FULL`` on both sides; 1 KB random payloads, one
recipient; ``--concurrency`` clients in this process on one aiohttp session.
A send counts only once A answered 201, which happens after B committed the
envelope and A committed its own copy. Reads fetch random sent hashes on B
(the recipient, as a node importing a block would): first warm (fresh
envelopes are served from B's write-through cache), then cold, after B
restarted, so every read goes to SQLite. Note the load generator
shares the machine's cores with both managers.

Run: ``python -m bench.tm_bench [--duration S] [--concurrency N]``; writes
``bench/results/tm_bench.json``. ``--store postgresql://USER@HOST:PORT/DB`` runs both
managers on PostgreSQL instead (each on a database of its own, created on that server
and dropped afterwards; the user needs CREATEDB), ``--store private-postgresql`` on a
PostgreSQL instance started for the run (tests/support/postgres.py); both write
``bench/results/tm_bench_postgresql.json``. PostgreSQL keeps no cache of fresh
envelopes, so there both read phases go to the database.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import psycopg

from tests.support.localnet import Manager, ManagerFactory
from tests.support.postgres import PrivateServer
from tests.support.waiting import wait_until

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "tm_bench.json"
POSTGRESQL_RESULTS_PATH = RESULTS_PATH.with_name("tm_bench_postgresql.json")
GOALS = {"send_per_s": 1000, "send_p99_ms": 50, "read_per_s": 3000}


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _summary(latencies: list[float], elapsed: float, errors: int) -> dict[str, Any]:
    return {
        "count": len(latencies),
        "errors": errors,
        "seconds": round(elapsed, 3),
        "per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(1000 * statistics.median(latencies), 2) if latencies else None,
        "p99_ms": round(1000 * _percentile(latencies, 0.99), 2) if latencies else None,
        "max_ms": round(1000 * max(latencies), 2) if latencies else None,
    }


async def _send_phase(
    session: aiohttp.ClientSession,
    url: str,
    recipient: str,
    payload_size: int,
    concurrency: int,
    duration: float,
) -> tuple[dict[str, Any], list[str]]:
    bodies = [
        json.dumps(
            {"payload": base64.b64encode(os.urandom(payload_size)).decode(), "to": [recipient]}
        )
        for _ in range(256)
    ]
    headers = {"Content-Type": "application/json"}
    latencies: list[float] = []
    keys: list[str] = []
    errors = 0
    deadline = time.perf_counter() + duration

    async def worker(index: int) -> None:
        nonlocal errors
        sequence = index
        while time.perf_counter() < deadline:
            body = bodies[sequence % len(bodies)]
            sequence += concurrency
            started = time.perf_counter()
            async with session.post(url + "/send", data=body, headers=headers) as response:
                answer = await response.read()
                if response.status != 201:
                    errors += 1
                    continue
            latencies.append(time.perf_counter() - started)
            keys.append(json.loads(answer)["key"])

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return _summary(latencies, time.perf_counter() - started, errors), keys


async def _read_phase(
    session: aiohttp.ClientSession, url: str, keys: list[str], concurrency: int, duration: float
) -> dict[str, Any]:
    paths = [f"{url}/transaction/{quote(key, safe='')}" for key in keys]
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration

    async def worker(seed: int) -> None:
        nonlocal errors
        chooser = random.Random(seed)
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            async with session.get(chooser.choice(paths)) as response:
                await response.read()
                if response.status != 200:
                    errors += 1
                    continue
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return _summary(latencies, time.perf_counter() - started, errors)


class CpuMeter:
    """CPU milliseconds each process spends per operation over one phase."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._before: dict[str, float] = {}

    def start(self) -> None:
        self._before = {name: _cpu_seconds(pid) for name, pid in self.pids.items()}

    def per_operation(self, count: int) -> dict[str, float]:
        return {
            name: round(1000 * (_cpu_seconds(pid) - self._before[name]) / max(1, count), 3)
            for name, pid in self.pids.items()
        }


def _pid(manager: Manager) -> int:
    if manager.process is None:
        raise RuntimeError(f"{manager.name} is not running")
    return manager.process.pid


class _Databases:
    """One new database per manager on a PostgreSQL server, dropped when done."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.names: list[str] = []

    def create(self, name: str) -> str:
        database = f"tm_bench_{name}_{os.getpid()}"
        with psycopg.connect(self.server_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{database}"')
            connection.execute(f'CREATE DATABASE "{database}"')
        self.names.append(database)
        base, _, _ = self.server_url.rpartition("/")
        return f"{base}/{database}"

    def drop(self) -> None:
        with psycopg.connect(self.server_url, autocommit=True) as connection:
            for database in self.names:
                connection.execute(f'DROP DATABASE IF EXISTS "{database}"')


async def _run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    factory = ManagerFactory(root, discovery_interval=1.0)
    databases = _Databases(args.store) if args.store else None
    try:
        b_settings = {"store": databases.create("b")} if databases else {}
        a_settings = {"store": databases.create("a")} if databases else {}
        b = factory.start("b", **b_settings)
        a = factory.start("a", [b], **a_settings)
        wait_until(lambda: a.knows_key(b.public_key), 30, "A to learn B's key")
        connector = aiohttp.TCPConnector(limit=args.concurrency * 2)
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            await _send_phase(
                session, a.q2t, b.public_key, args.payload_size, args.concurrency, 1.0
            )
            cpu = CpuMeter({"sender": _pid(a), "recipient": _pid(b), "bench": os.getpid()})
            cpu.start()
            send, keys = await _send_phase(
                session, a.q2t, b.public_key, args.payload_size, args.concurrency, args.duration
            )
            send["cpu_ms_per_send"] = cpu.per_operation(send["count"])
            cpu.start()
            read = await _read_phase(session, b.q2t, keys, args.concurrency, args.duration)
            read["cpu_ms_per_read"] = cpu.per_operation(read["count"])
            # The same reads after a restart of B: its cache of fresh envelopes is empty,
            # so every read goes to SQLite (what reading old transactions costs).
            b.stop()
            b.start()
            cpu.pids["recipient"] = _pid(b)
            cpu.start()
            cold = await _read_phase(session, b.q2t, keys, args.concurrency, args.duration)
            cold["cpu_ms_per_read"] = cpu.per_operation(cold["count"])
        return {"send": send, "read_on_recipient": read, "read_on_recipient_cold": cold}
    finally:
        factory.stop_all()
        if databases is not None:
            databases.drop()


def machine_info() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "aiohttp": version("aiohttp"),
        "pycryptodome": version("pycryptodome"),
        "sqlite": __import__("sqlite3").sqlite_version,
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Entry point for ``python -m bench.tm_bench`` and a bench runner."""
    parser = argparse.ArgumentParser(description="tx-manager /send and read throughput")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--payload-size", type=int, default=1024)
    parser.add_argument("--quick", action="store_true", help="3 s per phase")
    parser.add_argument(
        "--store",
        metavar="URL",
        help="postgresql://… (a server where the user may create databases), or "
        "private-postgresql (start one for the run); default: SQLite",
    )
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    if args.quick:
        args.duration = 3.0
    if args.output is None:
        args.output = POSTGRESQL_RESULTS_PATH if args.store else RESULTS_PATH
    private: PrivateServer | None = None
    if args.store == "private-postgresql":
        private = PrivateServer.start()
        args.store = private.url()
    elif args.store is not None and not args.store.startswith(("postgresql://", "postgres://")):
        parser.error("--store takes a postgresql:// URL or private-postgresql")
    load_before = os.getloadavg()
    try:
        with tempfile.TemporaryDirectory(prefix="tm-bench-") as root:
            figures = asyncio.run(_run(args, Path(root)))
    finally:
        if private is not None:
            private.stop()
    load_after = os.getloadavg()
    send, read = figures["send"], figures["read_on_recipient"]
    result: dict[str, Any] = {
        "benchmark": "tm_bench",
        "machine": machine_info(),
        "settings": {
            "managers": 2,
            "recipients_per_send": 1,
            "payload_bytes": args.payload_size,
            "concurrency": args.concurrency,
            "phase_seconds": args.duration,
            "store": "postgresql" if args.store else "sqlite",
            "durability": (
                "PostgreSQL, synchronous_commit as the server has it, group commit; "
                "201 after both commits"
                if args.store
                else "SQLite WAL, synchronous=FULL, group commit; 201 after both commits"
            ),
        },
        # Other work on the machine skews every figure; the CPU cost per operation does
        # not depend on it as much, so it is recorded beside the rates.
        "load_average_1min": {"before": round(load_before[0], 2), "after": round(load_after[0], 2)},
        **figures,
        "goals": GOALS,
        "goals_met": {
            "send_per_s": send["per_s"] >= GOALS["send_per_s"],
            "send_p99_ms": send["p99_ms"] is not None and send["p99_ms"] <= GOALS["send_p99_ms"],
            "read_per_s": read["per_s"] >= GOALS["read_per_s"],
        },
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"send: {send['per_s']}/s p50 {send['p50_ms']} ms p99 {send['p99_ms']} ms "
        f"({send['errors']} errors); reads on recipient: {read['per_s']}/s "
        f"p50 {read['p50_ms']} ms p99 {read['p99_ms']} ms; cold reads "
        f"{figures['read_on_recipient_cold']['per_s']}/s"
    )
    print(f"wrote {args.output}")
    return result


if __name__ == "__main__":
    main()
