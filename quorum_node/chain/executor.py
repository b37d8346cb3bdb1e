"""The chain thread: where all py-evm work runs, off the event loop.

py-evm's chain, VM and state objects are not safe to share between threads, and a
block of a thousand transactions takes about a second to execute. One dedicated thread
runs every chain operation in arrival order, so reads see committed blocks only and
the event loop stays free to answer clients while a block is built.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")
K = TypeVar("K")


class ChainExecutor:
    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chain")

    async def run(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(function, *args, **kwargs))

    def submit(self, function: Callable[[], T]) -> asyncio.Future[T]:
        """``run`` for callers that settle other futures from its outcome."""
        return asyncio.get_running_loop().run_in_executor(self._pool, function)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class CoalescedReads(Generic[K, T]):
    """Reads of one kind asked for in the same event-loop turn, run as one call on the
    chain thread.

    A JSON-RPC batch is answered by running its requests at once; 500 receipts were 500
    hand-offs to the chain thread and 500 back to the loop, each waking the other thread
    while the chain thread may be executing a block (a waking thread takes the GIL from
    it). Now they are one. Each read still fails or succeeds on its own.
    """

    def __init__(self, executor: ChainExecutor, read: Callable[[K], T]) -> None:
        self._executor = executor
        self._read = read
        self._waiting: list[tuple[K, asyncio.Future[T]]] = []

    async def get(self, key: K) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._waiting.append((key, future))
        if len(self._waiting) == 1:
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        waiting, self._waiting = self._waiting, []
        keys = [key for key, _ in waiting]
        try:
            outcome = self._executor.submit(functools.partial(self._read_all, keys))
        except RuntimeError as exc:  # the executor is shut down
            _settle(waiting, [(None, exc)] * len(waiting))
            return
        outcome.add_done_callback(functools.partial(self._settle_from, waiting))

    def _read_all(self, keys: Sequence[K]) -> list[tuple[T | None, BaseException | None]]:
        """On the chain thread: every read, each with its own result or error."""
        results: list[tuple[T | None, BaseException | None]] = []
        for key in keys:
            try:
                results.append((self._read(key), None))
            except Exception as exc:
                results.append((None, exc))
        return results

    @staticmethod
    def _settle_from(
        waiting: list[tuple[K, asyncio.Future[T]]],
        outcome: asyncio.Future[list[tuple[T | None, BaseException | None]]],
    ) -> None:
        if outcome.cancelled():  # the executor shut down with the reads queued
            for _, future in waiting:
                future.cancel()
        elif (error := outcome.exception()) is not None:
            _settle(waiting, [(None, error)] * len(waiting))
        else:
            _settle(waiting, outcome.result())


def _settle(
    waiting: Sequence[tuple[object, asyncio.Future[T]]],
    results: Sequence[tuple[T | None, BaseException | None]],
) -> None:
    for (_, future), (value, error) in zip(waiting, results, strict=True):
        if future.done():  # its request was cancelled meanwhile
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)  # type: ignore[arg-type]
