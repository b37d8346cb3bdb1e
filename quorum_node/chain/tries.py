"""The transaction, receipt and withdrawal tries of a block, built in one pass.

py-evm builds them (``eth.db.trie.make_trie_root_and_nodes``) by inserting every item
into a py-trie ``HexaryTrie``, about 0.8 ms per item in Python: for a block of a few
thousand transactions that is 5-10% of the node's time. The keys of these tries are
``rlp(index)`` for every index of a list, all known up front, so the trie can be built
bottom-up from the sorted keys instead (what go-ethereum's ``StackTrie`` does), each
node encoded and hashed once.

``ordered_trie_root_and_nodes`` returns exactly what py-evm's function returns: the
root hash and the mapping from node hash to encoded node for every node stored by hash
(the root always, any other node whose encoding is 32 bytes or more). The property
test ``tests/node/test_tries.py`` compares both against py-trie on arbitrary inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import rlp
from eth.constants import BLANK_ROOT_HASH
from eth_hash.auto import keccak
from eth_typing import Hash32

#: A node as rlp sees it: a list of byte strings and nested (embedded) nodes.
RawNode = list[Any]


def _nibbles(key: bytes) -> tuple[int, ...]:
    return tuple(nibble for byte in key for nibble in (byte >> 4, byte & 0x0F))


def _hex_prefix(nibbles: Sequence[int], is_leaf: bool) -> bytes:
    """Yellow paper appendix C: the flag nibble, a pad nibble if even, then the path."""
    flag = 2 if is_leaf else 0
    if len(nibbles) % 2:
        padded = [flag + 1, *nibbles]
    else:
        padded = [flag, 0, *nibbles]
    return bytes(padded[i] << 4 | padded[i + 1] for i in range(0, len(padded), 2))


def _build(
    items: Sequence[tuple[tuple[int, ...], bytes]], depth: int, nodes: dict[Hash32, bytes]
) -> RawNode:
    """The node for ``items`` (sorted, distinct keys) below ``depth`` nibbles."""
    if len(items) == 1:
        key, value = items[0]
        return [_hex_prefix(key[depth:], is_leaf=True), value]
    first, last = items[0][0], items[-1][0]
    # Sorted keys: the prefix common to all is the prefix common to the first and last.
    shared = 0
    limit = min(len(first), len(last)) - depth
    while shared < limit and first[depth + shared] == last[depth + shared]:
        shared += 1
    if shared:
        child = _build(items, depth + shared, nodes)
        return [_hex_prefix(first[depth : depth + shared], is_leaf=False), _reference(child, nodes)]
    branch: RawNode = [b""] * 17
    start = 0
    if len(first) == depth:  # a key that ends here keeps its value in the branch
        branch[16] = items[0][1]
        start = 1
    while start < len(items):
        nibble = items[start][0][depth]
        end = start + 1
        while end < len(items) and items[end][0][depth] == nibble:
            end += 1
        branch[nibble] = _reference(_build(items[start:end], depth + 1, nodes), nodes)
        start = end
    return branch


def _reference(node: RawNode, nodes: dict[Hash32, bytes]) -> Any:
    """How a parent refers to ``node``: embedded when short, else by hash (stored)."""
    encoded = rlp.encode(node)
    if len(encoded) < 32:
        return node
    node_hash = Hash32(keccak(encoded))
    nodes[node_hash] = encoded
    return node_hash


def trie_root_and_nodes(
    items: Sequence[tuple[bytes, bytes]],
) -> tuple[Hash32, dict[Hash32, bytes]]:
    """Root and stored nodes of the trie holding ``items``: distinct keys in any order,
    non-empty values (py-trie treats an empty value as a deletion)."""
    if not items:
        return Hash32(BLANK_ROOT_HASH), {}
    nibbled = sorted((_nibbles(key), value) for key, value in items)
    nodes: dict[Hash32, bytes] = {}
    root = _build(nibbled, 0, nodes)
    encoded = rlp.encode(root)
    root_hash = Hash32(keccak(encoded))
    nodes[root_hash] = encoded
    return root_hash, nodes


def ordered_trie_root_and_nodes(
    encoded_items: Sequence[bytes],
) -> tuple[Hash32, dict[Hash32, bytes]]:
    """py-evm's ``make_trie_root_and_nodes`` for already encoded items: the trie maps
    ``rlp(index)`` to the ``index``-th item."""
    return trie_root_and_nodes(
        [(rlp.encode(index), item) for index, item in enumerate(encoded_items)]
    )
