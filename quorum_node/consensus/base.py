"""The seams between the node and whatever orders its blocks.

An engine decides *when* a block is made and *who* makes it; the node knows *how*: take
executable transactions from the pool, build, commit, import. ``solo`` seals locally on
a timer and needs only ``BlockProducer``; ``raft`` lets the leader build and replicates
blocks through its log, and needs ``ReplicatedChain`` (blocks) and ``ForwardingPool``
(transactions that followers forward to the leader). ``quorum_node.node.Node``
implements all three; the engines never see the node itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol

from eth.abc import BlockAPI, BlockHeaderAPI, SignedTransactionAPI

from quorum_node.chain.service import CommittedBlock, PreparedBlock


class BlockProducer(Protocol):
    """What the solo engine may ask of the node."""

    @property
    def head(self) -> BlockHeaderAPI: ...

    async def produce_block(self, *, allow_empty: bool) -> CommittedBlock | None:
        """Build and commit a block from the pool (``None`` if empty and not allowed)."""
        ...

    def has_executable_transactions(self) -> bool: ...


class ReplicatedChain(Protocol):
    """The chain as a replicating engine sees it: a head, blocks built aside until the
    cluster accepts them, blocks made elsewhere to import, and blocks for peers."""

    @property
    def head(self) -> BlockHeaderAPI: ...

    @property
    def chain_id(self) -> int: ...

    @property
    def genesis_hash(self) -> bytes: ...

    async def prepare_block(
        self, *, allow_empty: bool, max_transactions: int | None = None
    ) -> PreparedBlock | None: ...

    async def commit_prepared(self, prepared: PreparedBlock) -> CommittedBlock: ...

    async def import_block(self, block: BlockAPI) -> CommittedBlock:
        """Re-execute and commit a block another node made; ``ChainError`` if invalid."""
        ...

    async def decode_blocks(self, encoded_blocks: Sequence[bytes]) -> list[BlockAPI]:
        """Decode wire blocks off the event loop; ``ChainError`` if one does not decode."""
        ...

    async def encoded_blocks(self, start: int, count: int) -> list[bytes]: ...


class ForwardingPool(Protocol):
    """The pool as a replicating engine sees it: what waits, and what peers forward."""

    def has_executable_transactions(self) -> bool: ...

    def waiting_transactions(self) -> list[SignedTransactionAPI]: ...

    def is_waiting(self, transaction_hash: bytes) -> bool: ...

    async def admit_forwarded(self, raw_transactions: Sequence[bytes]) -> int:
        """Admit what a peer forwarded; ``TransactionRejected`` if bytes are no
        transaction. Returns how many entered the pool."""
        ...


class ConsensusEngine(Protocol):
    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def transaction_added(self, transaction: SignedTransactionAPI) -> None:
        """The pool admitted ``transaction``: make a block when the rules allow, or
        forward it to the node that makes blocks."""
        ...

    async def seal_now(self) -> CommittedBlock | None:
        """Make a block at once, empty if nothing waits (``evm_mine``); ``None`` if this
        node may not make blocks."""
        ...

    def committed_head(self) -> int | None:
        """See ``node.EngineHooks.committed_head``."""
        ...

    def status(self) -> dict[str, Any]: ...


async def wait_or_timeout(event: asyncio.Event, timeout: float) -> bool:
    """Wait until ``event`` is set or ``timeout`` passed; True if it was set."""
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        return False
    return True
