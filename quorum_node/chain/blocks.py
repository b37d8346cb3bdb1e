"""A block's canonical encoding (RLP of header, transactions, uncles, withdrawals), as
nodes send blocks to each other and as the chain decodes them, with the chain's own
transaction types (private transactions included)."""

from __future__ import annotations

import rlp
from eth.abc import BlockAPI
from eth.vm.forks.prague.blocks import PragueBlockHeader
from rlp.codec import consume_length_prefix

from quorum_node.chain.transactions import QuorumBlock
from quorum_node.errors import ChainError


def encode_block(block: BlockAPI) -> bytes:
    return bytes(rlp.encode(block))


def decode_block(encoded: bytes) -> BlockAPI:
    """The block ``encoded`` holds; ``ChainError`` naming the fault if it is not one."""
    try:
        return rlp.decode(encoded, sedes=QuorumBlock)  # type: ignore[no-any-return]
    except Exception as exc:  # rlp and py-evm raise many decoding error types
        raise ChainError(f"block does not decode: {exc}") from None


def block_hash_of(encoded: bytes) -> bytes:
    """The hash of an encoded block, without decoding its transactions (those are
    decoded on the chain thread when the block is imported). Checks the outer shape
    (a list of header, transactions, uncles, withdrawals) and decodes the header;
    ``ChainError`` naming the fault otherwise."""
    try:
        _, kind, length, start = consume_length_prefix(encoded, 0)
        if kind is not list or start + length != len(encoded):
            raise ValueError("a block is one RLP list")
        items = []
        position = start
        while position < len(encoded):
            _, item_kind, item_length, item_start = consume_length_prefix(encoded, position)
            items.append((item_kind, encoded[position : item_start + item_length]))
            position = item_start + item_length
        if len(items) != 4 or any(kind is not list for kind, _ in items):
            raise ValueError("a block has four lists: header, transactions, uncles, withdrawals")
        header = rlp.decode(items[0][1], sedes=PragueBlockHeader)
    except Exception as exc:  # rlp and py-evm raise many decoding error types
        raise ChainError(f"block does not decode: {exc}") from None
    return bytes(header.hash)
