"""A minter whose waiting transactions cannot go in a block (their manager is down) tries
again with a growing wait, not once per loop turn (issue 27 saw 1,200 log lines a second),
and at once when a new transaction arrives; a block made resets the wait."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from quorum_node.consensus.solo import SoloEngine

pytestmark = pytest.mark.timeout(10)


class StuckProducer:
    """Transactions wait, but no block can be made of them until ``unstuck``."""

    head = type("Head", (), {"block_number": 0})()

    def __init__(self) -> None:
        self.attempts = 0
        self.unstuck = False

    async def produce_block(self, *, allow_empty: bool) -> Any:
        self.attempts += 1
        return object() if self.unstuck else None

    def has_executable_transactions(self) -> bool:
        return not self.unstuck


async def test_a_stuck_minter_backs_off_and_a_new_transaction_wakes_it() -> None:
    producer = StuckProducer()
    engine = SoloEngine(producer, block_period=0.01)  # type: ignore[arg-type]
    await engine.start()
    try:
        await asyncio.sleep(1.0)
        # 0.01, 0.02, 0.04, ... s: about seven tries in a second, not thousands
        assert 3 <= producer.attempts <= 10, producer.attempts
        before = producer.attempts
        producer.unstuck = True
        engine.transaction_added(None)  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
        assert producer.attempts > before
    finally:
        await engine.stop()
