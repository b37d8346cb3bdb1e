"""The one-pass trie builder against py-trie, the slow reference it replaces."""

from __future__ import annotations

import rlp
from eth.constants import BLANK_ROOT_HASH
from eth.db.trie import _make_trie_root_and_nodes
from hypothesis import given, settings
from hypothesis import strategies as st
from trie import HexaryTrie

from quorum_node.chain.tries import ordered_trie_root_and_nodes, trie_root_and_nodes

# Values of any length, short ones included: they decide whether nodes are embedded.
values = st.binary(min_size=1, max_size=80)


def reference(items: dict[bytes, bytes]) -> tuple[bytes, dict[bytes, bytes]]:
    store: dict[bytes, bytes] = {}
    trie = HexaryTrie(store, BLANK_ROOT_HASH)
    with trie.squash_changes() as memory_trie:
        for key, value in items.items():
            memory_trie[key] = value
    return trie.root_hash, store


@settings(max_examples=300, deadline=None)
@given(st.lists(values, max_size=300))
def test_ordered_trie_matches_py_evm(items: list[bytes]) -> None:
    assert ordered_trie_root_and_nodes(items) == _make_trie_root_and_nodes(tuple(items))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.binary(min_size=0, max_size=6), values, max_size=60))
def test_any_keys_match_py_trie(items: dict[bytes, bytes]) -> None:
    """Keys that are prefixes of others, the empty key, shared prefixes of any length."""
    assert trie_root_and_nodes(list(items.items())) == reference(items)


def test_large_block_matches_py_evm() -> None:
    items = tuple(rlp.encode([index, b"\x01" * (index % 70)]) for index in range(3000))
    assert ordered_trie_root_and_nodes(items) == _make_trie_root_and_nodes(items)


def test_empty_trie() -> None:
    assert ordered_trie_root_and_nodes([]) == (BLANK_ROOT_HASH, {})
