"""Loaded by every Python process a test starts with this folder on ``PYTHONPATH`` and
``QUORUM_LOOP_WATCHDOG_FILE`` set: it reports each asyncio callback that ran longer than
``QUORUM_LOOP_WATCHDOG_MS`` (default 100) of the event-loop thread's own CPU time.

CPU time, not wall time: on a shared 2-core machine a callback can wait for the CPU or
the GIL (py-evm runs on the chain thread) for longer than that without doing any work;
what must never happen is work on the loop itself that keeps it from answering. Each
report is one line appended to the file: pid, milliseconds, the callback.
"""

from __future__ import annotations

import asyncio.events
import os
import time
from typing import Any

_REPORT = os.environ.get("QUORUM_LOOP_WATCHDOG_FILE")
_LIMIT = float(os.environ.get("QUORUM_LOOP_WATCHDOG_MS", "100")) / 1000


def _install(report_path: str) -> None:
    original = asyncio.events.Handle._run

    def timed_run(self: Any) -> None:
        started = time.thread_time()
        try:
            original(self)
        finally:
            spent = time.thread_time() - started
            if spent > _LIMIT:
                callback = getattr(self, "_callback", None)
                # A task's step: name the task (its coroutine and where it now waits).
                culprit = getattr(callback, "__self__", callback)
                with open(report_path, "a") as report:
                    report.write(f"{os.getpid()} {spent * 1000:.0f} ms {culprit!r:.400}\n")

    asyncio.events.Handle._run = timed_run  # type: ignore[method-assign]


if _REPORT:
    _install(_REPORT)
