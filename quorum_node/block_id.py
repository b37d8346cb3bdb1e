"""Which block a request reads: a tag, a number or a hash (EIP-1898 objects included),
and the header it names on this node's chain."""

from __future__ import annotations

from dataclasses import dataclass

from eth.abc import BlockHeaderAPI
from eth_typing import Hash32

from quorum_node.chain.service import ChainService
from quorum_node.errors import QuorumNodeError

BLOCK_TAGS = ("latest", "earliest", "pending", "safe", "finalized")


class HeaderNotFound(QuorumNodeError):
    """A state read names a block this node does not have (geth's "header not found")."""

    def __init__(self) -> None:
        super().__init__("header not found")


@dataclass(frozen=True)
class BlockId:
    """A block named by tag, number or hash."""

    tag: str | None = None
    number: int | None = None
    hash: Hash32 | None = None
    require_canonical: bool = False


LATEST = BlockId(tag="latest")


def resolve_header(chain: ChainService, block: BlockId) -> BlockHeaderAPI | None:
    """The header ``block`` names, or None; chain thread. ``pending`` reads as latest."""
    if block.hash is not None:
        return chain.header_by_hash(block.hash)
    if block.tag == "earliest":
        return chain.header_by_number(0)
    if block.tag is not None:  # latest, pending, safe, finalized: Raft and solo are final
        return chain.head
    if block.number is None:
        raise ValueError("a BlockId names a tag, a number or a hash")
    return chain.header_by_number(block.number)


def state_header(chain: ChainService, block: BlockId) -> BlockHeaderAPI:
    """The header whose state a read uses; ``HeaderNotFound`` if there is none."""
    header = resolve_header(chain, block)
    if header is None:
        raise HeaderNotFound()
    return header
