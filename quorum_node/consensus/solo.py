"""One node orders everything: GoQuorum's Raft minter timing without the Raft.

When executable transactions wait, a block is sealed at most once per block period
(50 ms by default, like GoQuorum's Raft minter), so a burst of transactions lands in a
few large blocks rather than many tiny ones. No empty blocks are sealed, except on
demand through ``evm_mine``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from eth.abc import SignedTransactionAPI

from quorum_node.chain.service import CommittedBlock
from quorum_node.consensus.base import BlockProducer, wait_or_timeout
from quorum_shared.backoff import Backoff

logger = logging.getLogger(__name__)

#: At most this long between tries while transactions wait that cannot go in a block.
MAX_STALL_SECONDS = 2.0


class SoloEngine:
    name = "solo"

    def __init__(self, producer: BlockProducer, block_period: float = 0.05) -> None:
        self._producer = producer
        self._block_period = block_period
        self._wake = asyncio.Event()
        self._sealing = asyncio.Lock()
        self._last_block_at = 0.0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="solo-minter")
        if self._producer.has_executable_transactions():
            self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    def transaction_added(self, transaction: SignedTransactionAPI) -> None:
        self._wake.set()

    async def seal_now(self) -> CommittedBlock | None:
        async with self._sealing:
            committed = await self._producer.produce_block(allow_empty=True)
            self._last_block_at = time.monotonic()
            return committed

    def committed_head(self) -> int | None:
        """One node: whatever it committed is the committed head."""
        return int(self._producer.head.block_number)

    def status(self) -> dict[str, Any]:
        return {"engine": self.name, "blockPeriodMs": int(self._block_period * 1000)}

    async def _run(self) -> None:
        stalled = Backoff(self._block_period, MAX_STALL_SECONDS)
        while True:
            await self._wake.wait()
            self._wake.clear()
            delay = self._last_block_at + self._block_period - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            committed = None
            try:
                async with self._sealing:
                    committed = await self._producer.produce_block(allow_empty=False)
                    self._last_block_at = time.monotonic()
            except Exception:
                # A failed block must not kill the minter; the error is the node's to log.
                logger.exception("sealing a block failed")
            if committed is not None:
                stalled.reset()
            elif self._producer.has_executable_transactions():
                # Transactions wait but none could go in (their manager does not answer):
                # try again later, or as soon as another transaction arrives.
                await wait_or_timeout(self._wake, stalled.next())
            if self._producer.has_executable_transactions():
                self._wake.set()
