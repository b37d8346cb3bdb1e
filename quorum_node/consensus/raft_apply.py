"""Bringing this node's chain up to the tip the Raft cluster accepted.

Every node, leader included, applies accepted blocks in order. For each block after the
head the applier uses, in this order:

1. the block this node prepared itself as leader (its writes are committed as they are);
2. a body the leader pushed before proposing it (``add_body``), checked against the
   agreed hash and the head;
3. otherwise blocks fetched from peers, checked to chain from the head to the agreed
   hashes before any is imported.

Import re-executes every block, so a peer cannot slip in a state that differs from the
agreed one without the state root check failing. If the head ends on the agreed number
with another hash, this node's chain diverged: the applier halts (``halted`` says why)
rather than build on it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Protocol

from eth.abc import BlockAPI
from eth_utils import encode_hex

from quorum_node.chain.blocks import block_hash_of
from quorum_node.chain.service import PreparedBlock
from quorum_node.consensus.base import ReplicatedChain
from quorum_node.errors import ChainError
from quorum_node.p2p.network import Peer, PeerUnreachable
from quorum_node.p2p.wire import MAX_BLOCKS_PER_REQUEST, WireError

logger = logging.getLogger(__name__)

BODY_CACHE_LIMIT = 256
MAX_UNANCHORED_BLOCKS = 4096


class BlockPeers(Protocol):
    """Where missing blocks come from (``p2p.network.PeerNetwork``)."""

    def peers_to_ask(self) -> Sequence[Peer]:
        """Peers in the order to ask them, the ones that answered recently first."""
        ...

    async def fetch_blocks(self, peer: Peer, start: int, count: int) -> list[bytes]: ...


class BlockApplier:
    """Applies accepted blocks to the chain; see the module docstring."""

    def __init__(self, chain: ReplicatedChain, peers: BlockPeers) -> None:
        self._chain = chain
        self._peers = peers
        self.accepted: dict[int, bytes] = {}
        self._bodies: dict[bytes, bytes] = {}
        self.prepared: PreparedBlock | None = None
        self.halted: str | None = None
        self._head_moved = asyncio.Condition()

    def accept(self, number: int, block_hash: bytes) -> None:
        """The cluster accepted block ``number`` with ``block_hash``."""
        self.accepted[number] = block_hash

    def add_body(self, encoded_block: bytes) -> bytes:
        """Keep a pushed block body until its number is applied; its hash.
        ``ChainError`` if the bytes are not a block."""
        block_hash = block_hash_of(encoded_block)
        if len(self._bodies) >= BODY_CACHE_LIMIT:
            self._bodies.pop(next(iter(self._bodies)))
        self._bodies[block_hash] = encoded_block
        return block_hash

    async def wait_for_head(self, number: int) -> None:
        """Until the chain's head is at ``number`` or beyond (woken by each block applied)."""
        async with self._head_moved:
            await self._head_moved.wait_for(lambda: self._chain.head.block_number >= number)

    async def _moved(self) -> None:
        async with self._head_moved:
            self._head_moved.notify_all()

    async def apply_to(self, target_number: int, target_hash: bytes) -> None:
        """Apply every accepted block up to ``target_number`` (whose hash is
        ``target_hash``). Raises ``ChainError`` when a block cannot be had or imported;
        the caller retries later."""
        if self.halted:
            return
        chain = self._chain
        while chain.head.block_number < target_number:
            number = chain.head.block_number + 1
            expected = target_hash if number == target_number else self.accepted.get(number)
            if await self._apply_prepared(number, expected) or await self._apply_pushed(expected):
                await self._moved()
                continue
            for block in await self._fetch_verified(number, target_number, target_hash):
                await chain.import_block(block)
                await self._moved()
        for stale in [n for n in self.accepted if n <= chain.head.block_number]:
            del self.accepted[stale]
        if chain.head.block_number == target_number and chain.head.hash != target_hash:
            self.halted = (
                f"local block #{target_number} {encode_hex(chain.head.hash)} differs from the "
                f"cluster's {encode_hex(target_hash)}"
            )
            logger.error("stopped importing: %s", self.halted)

    async def _apply_prepared(self, number: int, expected: bytes | None) -> bool:
        prepared = self.prepared
        if (
            prepared is None
            or prepared.block.number != number
            or (expected is not None and prepared.block.hash != expected)
            or prepared.block.header.parent_hash != self._chain.head.hash
        ):
            return False
        self.prepared = None
        await self._chain.commit_prepared(prepared)
        return True

    async def _apply_pushed(self, expected: bytes | None) -> bool:
        encoded = self._bodies.pop(expected, None) if expected is not None else None
        if encoded is None:
            return False
        (block,) = await self._chain.decode_blocks([encoded])
        if block.header.parent_hash != self._chain.head.hash:
            return False
        await self._chain.import_block(block)
        return True

    async def _fetch_verified(
        self, start: int, target_number: int, target_hash: bytes
    ) -> list[BlockAPI]:
        """Blocks ``start``..``target_number`` from a peer, checked to chain from our head
        to the agreed hashes before any is imported (import then re-executes each)."""
        errors: list[str] = []
        for peer in self._peers.peers_to_ask():
            try:
                blocks = await self._fetch_chain(peer, start, target_number, target_hash)
            except (PeerUnreachable, WireError, ChainError) as exc:
                errors.append(str(exc))
                continue
            if blocks:
                return blocks
            errors.append(f"{peer.enode.host}:{peer.enode.p2p_port} sent blocks that do not chain")
        raise ChainError(f"no peer could supply block #{start}: {'; '.join(errors) or 'no peers'}")

    async def _fetch_chain(
        self, peer: Peer, start: int, target_number: int, target_hash: bytes
    ) -> list[BlockAPI]:
        blocks: list[BlockAPI] = []
        parent = self._chain.head.hash
        number = start
        while number <= target_number:
            count = min(MAX_BLOCKS_PER_REQUEST, target_number - number + 1)
            chunk = await self._chain.decode_blocks(
                await self._peers.fetch_blocks(peer, number, count)
            )
            if not chunk:
                return []
            for block in chunk:
                known = self.accepted.get(block.number)
                if block.header.parent_hash != parent or (
                    known is not None and block.hash != known
                ):
                    return []
                blocks.append(block)
                parent = block.hash
                number += 1
            if len(blocks) >= MAX_UNANCHORED_BLOCKS and blocks[-1].number in self.accepted:
                return blocks  # anchored to an agreed hash: import these, then go on
        return blocks if blocks and blocks[-1].hash == target_hash else []
