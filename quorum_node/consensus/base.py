"""The seam between the node and whatever orders its blocks.

An engine decides *when* a block is made and *who* makes it; the node (``BlockProducer``)
knows *how*: take executable transactions from the pool, build, commit. ``solo`` seals
locally on a timer; ``raft`` (a later engine) lets the leader seal and replicates blocks
through its log. The node only ever calls the four methods below.
"""

from __future__ import annotations

from typing import Any, Protocol

from eth.abc import SignedTransactionAPI

from quorum_node.chain.service import CommittedBlock


class BlockProducer(Protocol):
    """What an engine may ask of the node."""

    async def produce_block(self, *, allow_empty: bool) -> CommittedBlock | None:
        """Build and commit a block from the pool (``None`` if empty and not allowed)."""
        ...

    def has_executable_transactions(self) -> bool: ...


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

    def status(self) -> dict[str, Any]: ...
