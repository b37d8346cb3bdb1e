"""The chain thread's coalesced reads: one hand-off for the lookups of one loop turn."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from quorum_node.chain.executor import ChainExecutor, CoalescedReads


class CountingReads:
    """A read that records which thread ran it and in which chain-thread call."""

    def __init__(self) -> None:
        self.threads: set[str] = set()

    def read(self, key: int) -> int:
        self.threads.add(threading.current_thread().name)
        if key < 0:
            raise KeyError(key)
        return key * 10


@pytest.fixture
def executor() -> Iterator[ChainExecutor]:
    chain = ChainExecutor()
    yield chain
    chain.shutdown()


async def test_lookups_of_one_turn_are_one_chain_thread_call(executor: ChainExecutor) -> None:
    reads = CountingReads()
    submitted: list[object] = []
    original = executor.submit

    def counting_submit(function):  # type: ignore[no-untyped-def]
        submitted.append(function)
        return original(function)

    executor.submit = counting_submit  # type: ignore[method-assign]
    coalesced = CoalescedReads(executor, reads.read)

    values = await asyncio.gather(*(coalesced.get(key) for key in range(500)))

    assert values == [key * 10 for key in range(500)]
    assert len(submitted) == 1
    assert {name.startswith("chain") for name in reads.threads} == {True}
    # a later turn is a call of its own
    assert await coalesced.get(7) == 70
    assert len(submitted) == 2


async def test_a_failing_read_fails_only_its_own_lookup(executor: ChainExecutor) -> None:
    coalesced = CoalescedReads(executor, CountingReads().read)
    results = await asyncio.gather(
        coalesced.get(1), coalesced.get(-1), coalesced.get(2), return_exceptions=True
    )
    assert results[0] == 10 and results[2] == 20
    assert isinstance(results[1], KeyError)


async def test_a_cancelled_lookup_leaves_the_others_answered(executor: ChainExecutor) -> None:
    coalesced = CoalescedReads(executor, CountingReads().read)
    first = asyncio.ensure_future(coalesced.get(1))
    second = asyncio.ensure_future(coalesced.get(2))
    await asyncio.sleep(0)  # both are queued; the flush is scheduled
    first.cancel()
    assert await second == 20
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_lookups_after_shutdown_fail_instead_of_hanging() -> None:
    chain = ChainExecutor()
    chain.shutdown()
    coalesced = CoalescedReads(chain, CountingReads().read)
    with pytest.raises(RuntimeError):
        await asyncio.wait_for(coalesced.get(1), 5)
