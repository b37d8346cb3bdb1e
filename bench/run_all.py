"""Run every benchmark (``make bench``): each ``bench/*_bench.py`` with a ``main()``, one
subprocess apiece, so one benchmark's memory and threads never colour the next.

Each benchmark writes its own JSON into ``bench/results/``; this runner adds
``bench/results/run_all.json`` with each one's exit status and duration. Arguments after
``--`` are not used; pass per-benchmark settings by running that module directly.
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"

#: Arguments that keep the default ``make bench`` to about ten minutes in all.
DEFAULT_ARGS: dict[str, list[str]] = {
    "node_bench": ["--n", "20000"],
    "db_bench": ["--blocks", "100", "--repeats", "1"],
}


def discover() -> list[str]:
    """Module names of ``bench/*_bench.py`` files that define a top-level ``main``."""
    names = []
    for path in sorted(BENCH_DIR.glob("*_bench.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        if any(isinstance(node, ast.FunctionDef) and node.name == "main" for node in tree.body):
            names.append(path.stem)
    # The node benchmark first: it is the one the README table quotes.
    return sorted(names, key=lambda name: (name != "node_bench", name))


def run_one(name: str, extra_args: Sequence[str], timeout: float) -> dict[str, Any]:
    command = [sys.executable, "-m", f"bench.{name}", *extra_args]
    print(f"== {' '.join(command[1:])}", flush=True)
    started = time.perf_counter()
    try:
        completed = subprocess.run(command, cwd=BENCH_DIR.parent, timeout=timeout, check=False)
        status: int | str = completed.returncode
    except subprocess.TimeoutExpired:
        status = f"timed out after {timeout:.0f}s"
    return {
        "args": list(extra_args),
        "status": status,
        "seconds": round(time.perf_counter() - started, 1),
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="run every bench/*_bench.py")
    parser.add_argument("--only", action="append", help="run only these benchmarks")
    parser.add_argument(
        "--quick", action="store_true", help="pass --quick to the benchmarks that accept it"
    )
    parser.add_argument("--timeout", type=float, default=900, help="seconds per benchmark")
    args = parser.parse_args(argv)
    names = [name for name in discover() if not args.only or name in args.only]
    summary: dict[str, Any] = {}
    for name in names:
        extra = list(DEFAULT_ARGS.get(name, []))
        if args.quick:
            source = (BENCH_DIR / f"{name}.py").read_text()
            extra = ["--quick"] if '"--quick"' in source else extra
        summary[name] = run_one(name, extra, args.timeout)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "run_all.json").write_text(json.dumps(summary, indent=2) + "\n")
    failed = [name for name, entry in summary.items() if entry["status"] != 0]
    print(json.dumps(summary, indent=2))
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        raise SystemExit(1)
    return summary


if __name__ == "__main__":
    main()
