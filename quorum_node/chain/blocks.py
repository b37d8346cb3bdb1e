"""A block's canonical encoding (RLP of header, transactions, uncles, withdrawals), as
nodes send blocks to each other and as the chain decodes them, with the chain's own
transaction types (private transactions included)."""

from __future__ import annotations

import rlp
from eth.abc import BlockAPI
from eth.vm.forks.prague.blocks import PragueBlockHeader
from rlp.codec import consume_length_prefix

from quorum_node.chain.transactions import QuorumBlock, take_hash_from_wire
from quorum_node.errors import ChainError


def encode_block(block: BlockAPI) -> bytes:
    return bytes(rlp.encode(block))


def decode_block(encoded: bytes) -> BlockAPI:
    """The block ``encoded`` holds; ``ChainError`` naming the fault if it is not one.
    Its legacy transactions take their hashes from their bytes in ``encoded``."""
    try:
        block = rlp.decode(encoded, sedes=QuorumBlock)
    except Exception as exc:  # rlp and py-evm raise many decoding error types
        raise ChainError(f"block does not decode: {exc}") from None
    for transaction, item in zip(block.transactions, _transaction_items(encoded), strict=True):
        take_hash_from_wire(transaction, item)
    return block  # type: ignore[no-any-return]


def _list_items(encoded: bytes, what: str) -> list[tuple[type, bytes]]:
    """The items of the one RLP list ``encoded`` is: each item's kind (``list`` or
    ``bytes``) and whole encoding, prefix included. ``ValueError`` naming ``what`` if
    ``encoded`` is not exactly one list."""
    _, kind, length, start = consume_length_prefix(encoded, 0)
    if kind is not list or start + length != len(encoded):
        raise ValueError(f"{what} is one RLP list")
    items = []
    position = start
    while position < len(encoded):
        _, item_kind, item_length, item_start = consume_length_prefix(encoded, position)
        items.append((item_kind, encoded[position : item_start + item_length]))
        position = item_start + item_length
    return items


def _transaction_items(encoded: bytes) -> list[bytes]:
    """Each transaction's encoding in a block that decoded (legacy ones are RLP lists;
    a typed one is a byte string wrapping its type and payload)."""
    _, transactions = _list_items(encoded, "a block")[1]
    return [item for _, item in _list_items(transactions, "a block's transactions")]


def block_hash_of(encoded: bytes) -> bytes:
    """The hash of an encoded block, without decoding its transactions (those are
    decoded on the chain thread when the block is imported). Checks the outer shape
    (a list of header, transactions, uncles, withdrawals) and decodes the header;
    ``ChainError`` naming the fault otherwise."""
    try:
        items = _list_items(encoded, "a block")
        if len(items) != 4 or any(kind is not list for kind, _ in items):
            raise ValueError("a block has four lists: header, transactions, uncles, withdrawals")
        header = rlp.decode(items[0][1], sedes=PragueBlockHeader)
    except Exception as exc:  # rlp and py-evm raise many decoding error types
        raise ChainError(f"block does not decode: {exc}") from None
    return bytes(header.hash)
