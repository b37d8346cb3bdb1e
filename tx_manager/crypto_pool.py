"""Crypto off the event loop, in batches: concurrent calls share one hop to a worker thread.

A decrypt of a 1 KB payload costs about 40 µs; handing one call to a thread
and back costs more than that (a queue, a wake-up, a self-pipe write and GIL
hand-offs: measured at about 0.25 ms of CPU per read in ``bench.tm_bench``).
So calls are not submitted one by one: at most ``workers`` batches run at once,
and every call that arrives meanwhile waits for the next batch. An idle manager
still answers a lone call in one hop; a busy one pays one hop per batch.

Each call gets its own outcome (its result or its exception); nothing else
is shared between the calls of a batch. ``close`` fails whatever still waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from tx_manager.futures import settle

T = TypeVar("T")

_Outcome = tuple[Any, BaseException | None]
_Call = tuple[Callable[[], Any], "asyncio.Future[Any]"]


def _run_batch(calls: list[Callable[[], Any]]) -> list[_Outcome]:
    outcomes: list[_Outcome] = []
    for call in calls:
        try:
            outcomes.append((call(), None))
        except Exception as exc:  # each call's error is its own
            outcomes.append((None, exc))
    return outcomes


class CryptoPool:
    def __init__(self, workers: int, max_batch: int = 256) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tm-crypto")
        self._workers = workers
        self._max_batch = max_batch
        self._pending: list[_Call] = []
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self.batches = 0

    async def run(self, call: Callable[[], T]) -> T:
        """Run ``call`` on a worker thread (batched with concurrent calls); its result."""
        if self._closed:
            raise RuntimeError("the crypto pool is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((call, future))
        self._start_batches()
        return await future

    def _start_batches(self) -> None:
        while self._pending and self._in_flight < self._workers and not self._closed:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            self._in_flight += 1
            self.batches += 1
            task = asyncio.create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[_Call]) -> None:
        try:
            live = [(call, future) for call, future in batch if not future.done()]
            outcomes = await asyncio.get_running_loop().run_in_executor(
                self._executor, _run_batch, [call for call, _ in live]
            )
            for (_, future), (result, error) in zip(live, outcomes, strict=True):
                settle(future, result, error)
        except BaseException as exc:
            for _, future in batch:
                settle(future, None, exc if isinstance(exc, Exception) else _closing())
            if not isinstance(exc, Exception):
                raise
        finally:
            self._in_flight -= 1
            self._start_batches()

    async def close(self) -> None:
        """Finish the batches in flight, fail the waiting calls, stop the threads."""
        self._closed = True
        for _, future in self._pending:
            settle(future, None, _closing())
        self._pending.clear()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._executor.shutdown(wait=True)


def _closing() -> RuntimeError:
    return RuntimeError("the crypto pool is closing")
