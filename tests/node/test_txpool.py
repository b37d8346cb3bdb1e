"""The transaction pool on its own: ordering, queueing, replacement and geth's refusals.

Transactions are real signed py-evm transactions of the node's fork; the pool is fed
account views by hand, as the node feeds it from the head state.
"""

from __future__ import annotations

import pytest
from eth.abc import SignedTransactionAPI
from eth_keys import keys
from eth_typing import Address

from quorum_node.chain.vm import QuorumVM
from quorum_node.errors import TransactionRejected
from quorum_node.txpool import AccountView, TransactionPool
from tests.support.node_process import TEST_KEYS

CHAIN_ID = 1337
GWEI = 10**9
RICH = AccountView(nonce=0, balance=10**30)
KEYS = [keys.PrivateKey(key) for key in TEST_KEYS[:3]]
ALICE, BOB, CAROL = (Address(key.public_key.to_canonical_address()) for key in KEYS)
RECIPIENT = Address(b"\x42" * 20)


def legacy(
    key_index: int, nonce: int, gas_price: int = 0, gas: int = 21_000, value: int = 0
) -> SignedTransactionAPI:
    builder = QuorumVM.get_transaction_builder()
    unsigned = builder.create_unsigned_transaction(
        nonce=nonce, gas_price=gas_price, gas=gas, to=RECIPIENT, value=value, data=b""
    )
    return unsigned.as_signed_transaction(KEYS[key_index], chain_id=CHAIN_ID)


def dynamic(
    key_index: int, nonce: int, tip: int, fee_cap: int, gas: int = 21_000
) -> SignedTransactionAPI:
    builder = QuorumVM.get_transaction_builder()
    unsigned = builder.new_unsigned_dynamic_fee_transaction(
        CHAIN_ID, nonce, tip, fee_cap, gas, RECIPIENT, 0, b"", ()
    )
    return unsigned.as_signed_transaction(KEYS[key_index])


def senders_of(
    pool: TransactionPool, transactions: list[SignedTransactionAPI]
) -> list[tuple[Address, int]]:
    found = []
    for transaction in transactions:
        waiting = pool.lookup(transaction.hash)
        assert waiting is not None
        found.append((waiting[1], transaction.nonce))
    return found


def test_one_sender_runs_in_nonce_order_whatever_the_arrival_order() -> None:
    pool = TransactionPool()
    for nonce in (2, 0, 1):
        pool.add(legacy(0, nonce), ALICE, RICH)
    assert [tx.nonce for tx in pool.executable()] == [0, 1, 2]
    assert pool.pending_nonce(ALICE, 0) == 3
    assert len(pool) == 3


def test_future_nonce_is_queued_until_the_gap_fills() -> None:
    pool = TransactionPool()
    pool.add(legacy(0, 1), ALICE, RICH)
    pool.add(legacy(0, 3), ALICE, RICH)
    assert pool.executable() == []
    assert not pool.has_executable()
    assert pool.pending_nonce(ALICE, 0) == 0
    pending, queued = pool.content()
    assert pending == {} and [tx.nonce for tx in queued[ALICE]] == [1, 3]

    pool.add(legacy(0, 0), ALICE, RICH)
    assert pool.has_executable()
    assert [tx.nonce for tx in pool.executable()] == [0, 1]
    assert pool.pending_nonce(ALICE, 0) == 2
    pending, queued = pool.content()
    assert [tx.nonce for tx in pending[ALICE]] == [0, 1]
    assert [tx.nonce for tx in queued[ALICE]] == [3]


def test_queued_transaction_is_promoted_when_a_block_includes_the_gap() -> None:
    pool = TransactionPool()
    pool.add(legacy(0, 1), ALICE, RICH)
    assert pool.executable() == []
    # nonce 0 arrived some other way (another node) and was included in a block
    pool.remove_included([(legacy(0, 0), ALICE)])
    assert [tx.nonce for tx in pool.executable()] == [1]


def test_state_nonce_ahead_of_the_pool_promotes_queued_transactions() -> None:
    pool = TransactionPool()
    pool.add(legacy(0, 5), ALICE, RICH)
    assert pool.executable() == []
    pool.add(legacy(0, 6), ALICE, AccountView(nonce=5, balance=10**30))
    assert [tx.nonce for tx in pool.executable()] == [5, 6]


def test_nonce_too_low() -> None:
    pool = TransactionPool()
    with pytest.raises(TransactionRejected, match="^nonce too low$"):
        pool.add(legacy(0, 2), ALICE, AccountView(nonce=3, balance=10**30))
    pool.add(legacy(0, 0), ALICE, RICH)
    pool.add(legacy(0, 1), ALICE, RICH)
    pool.remove_included([(legacy(0, 0), ALICE)])
    # while the sender has transactions waiting, the pool knows the included nonce
    # even when the caller's view of the state lags behind
    with pytest.raises(TransactionRejected, match="^nonce too low$"):
        pool.add(legacy(0, 0, gas_price=5), ALICE, RICH)


def test_insufficient_funds_counts_gas_times_price_plus_value() -> None:
    pool = TransactionPool()
    cost = 21_000 * GWEI + 7
    message = r"^insufficient funds for gas \* price \+ value$"
    with pytest.raises(TransactionRejected, match=message):
        pool.add(legacy(0, 0, gas_price=GWEI, value=7), ALICE, AccountView(0, cost - 1))
    pool.add(legacy(0, 0, gas_price=GWEI, value=7), ALICE, AccountView(0, cost))
    # EIP-1559: the fee cap, not the tip, is what must be affordable
    with pytest.raises(TransactionRejected, match="insufficient funds"):
        pool.add(dynamic(1, 0, tip=0, fee_cap=GWEI), BOB, AccountView(0, 21_000 * GWEI - 1))
    # free gas: a penniless account may send
    pool.add(legacy(2, 0), CAROL, AccountView(0, 0))
    assert len(pool) == 2


def test_already_known() -> None:
    pool = TransactionPool()
    transaction = legacy(0, 0)
    pool.add(transaction, ALICE, RICH)
    with pytest.raises(TransactionRejected, match="^already known$"):
        pool.add(transaction, ALICE, RICH)
    assert len(pool) == 1


def test_replacement_needs_a_price_bump_of_ten_percent() -> None:
    pool = TransactionPool()
    first = legacy(0, 0, gas_price=100 * GWEI)
    pool.add(first, ALICE, RICH)
    for too_cheap in (100 * GWEI, 109 * GWEI, 50 * GWEI):
        with pytest.raises(TransactionRejected, match="^replacement transaction underpriced$"):
            pool.add(legacy(0, 0, gas_price=too_cheap, gas=21_001), ALICE, RICH)
    replacement = legacy(0, 0, gas_price=110 * GWEI)
    assert pool.add(replacement, ALICE, RICH) == first
    assert first.hash not in pool and replacement.hash in pool
    assert pool.executable() == [replacement]
    assert len(pool) == 1


def test_replacement_of_a_free_transaction_needs_any_positive_price() -> None:
    pool = TransactionPool()
    first = legacy(0, 0, gas_price=0)
    pool.add(first, ALICE, RICH)
    with pytest.raises(TransactionRejected, match="^replacement transaction underpriced$"):
        pool.add(legacy(0, 0, gas_price=0, gas=22_000), ALICE, RICH)
    assert pool.add(legacy(0, 0, gas_price=1), ALICE, RICH) == first


def test_dynamic_fee_replacement_needs_both_cap_and_tip_bumped() -> None:
    pool = TransactionPool()
    first = dynamic(0, 0, tip=10 * GWEI, fee_cap=100 * GWEI)
    pool.add(first, ALICE, RICH)
    with pytest.raises(TransactionRejected, match="^replacement transaction underpriced$"):
        pool.add(dynamic(0, 0, tip=10 * GWEI, fee_cap=200 * GWEI), ALICE, RICH)
    with pytest.raises(TransactionRejected, match="^replacement transaction underpriced$"):
        pool.add(dynamic(0, 0, tip=20 * GWEI, fee_cap=100 * GWEI), ALICE, RICH)
    replacement = dynamic(0, 0, tip=11 * GWEI, fee_cap=110 * GWEI)
    assert pool.add(replacement, ALICE, RICH) == first


def test_a_queued_transaction_can_be_replaced_too() -> None:
    pool = TransactionPool()
    first = legacy(0, 4, gas_price=GWEI)
    pool.add(first, ALICE, RICH)
    with pytest.raises(TransactionRejected, match="underpriced"):
        pool.add(legacy(0, 4, gas_price=GWEI, gas=30_000), ALICE, RICH)
    assert pool.add(legacy(0, 4, gas_price=2 * GWEI), ALICE, RICH) == first
    assert len(pool) == 1


def test_executable_interleaves_senders_by_arrival_keeping_nonce_order() -> None:
    pool = TransactionPool()
    arrivals = [(0, 1), (1, 0), (0, 0), (2, 0), (1, 1), (0, 2)]
    for key_index, nonce in arrivals:
        pool.add(legacy(key_index, nonce), [ALICE, BOB, CAROL][key_index], RICH)
    order = senders_of(pool, pool.executable())
    # Each arrival slot is taken by the next nonce of the sender that arrived there.
    assert order == [(ALICE, 0), (BOB, 0), (ALICE, 1), (CAROL, 0), (BOB, 1), (ALICE, 2)]
    for sender in (ALICE, BOB, CAROL):
        nonces = [nonce for who, nonce in order if who == sender]
        assert nonces == sorted(nonces) == list(range(len(nonces)))


def test_executable_stops_at_the_gas_bound() -> None:
    pool = TransactionPool()
    for nonce in range(5):
        pool.add(legacy(0, nonce, gas=30_000), ALICE, RICH)
    pool.add(legacy(1, 0, gas=50_000), BOB, RICH)
    assert len(pool.executable(max_gas=None)) == 6
    assert [tx.nonce for tx in pool.executable(max_gas=90_000)] == [0, 1, 2]
    assert [tx.nonce for tx in pool.executable(max_gas=89_999)] == [0, 1]
    assert pool.executable(max_gas=29_999) == []
    # the bound counts declared gas of every sender
    assert sum(tx.gas for tx in pool.executable(max_gas=200_000)) <= 200_000


def test_remove_included_forgets_them_and_drops_stale_nonces() -> None:
    pool = TransactionPool()
    alice = [legacy(0, nonce) for nonce in range(4)]
    for transaction in alice:
        pool.add(transaction, ALICE, RICH)
    bob = legacy(1, 0)
    pool.add(bob, BOB, RICH)
    # a block included Alice 0 and 1 and Bob 0
    pool.remove_included([(alice[0], ALICE), (alice[1], ALICE), (bob, BOB)])
    assert len(pool) == 2
    assert alice[0].hash not in pool and bob.hash not in pool
    assert [tx.nonce for tx in pool.executable()] == [2, 3]
    assert pool.pending_nonce(BOB, 1) == 1
    assert pool.pending_nonce(ALICE, 2) == 4

    # a block included Alice's nonce 3 signed differently (elsewhere): 2 and 3 go stale
    other = legacy(0, 3, gas_price=7)
    pool.remove_included([(other, ALICE)])
    assert len(pool) == 0
    assert pool.executable() == [] and not pool.has_executable()
    assert pool.content() == ({}, {})


def test_remove_refused_transaction_leaves_later_nonces_queued() -> None:
    pool = TransactionPool()
    transactions = [legacy(0, nonce) for nonce in range(3)]
    for transaction in transactions:
        pool.add(transaction, ALICE, RICH)
    pool.remove([transactions[0]])
    assert pool.executable() == []
    assert pool.pending_nonce(ALICE, 0) == 0
    pending, queued = pool.content()
    assert pending == {} and [tx.nonce for tx in queued[ALICE]] == [1, 2]


def test_pool_size_limit() -> None:
    pool = TransactionPool(max_size=2)
    pool.add(legacy(0, 0, gas_price=1), ALICE, RICH)
    pool.add(legacy(0, 1), ALICE, RICH)
    with pytest.raises(TransactionRejected, match="txpool is full"):
        pool.add(legacy(1, 0), BOB, RICH)
    # a replacement does not grow the pool, so it is still allowed
    pool.add(legacy(0, 0, gas_price=2), ALICE, RICH)
    assert len(pool) == 2


def test_waiting_lists_pending_and_queued_in_nonce_order() -> None:
    pool = TransactionPool()
    for nonce in (3, 0, 1):  # 0 and 1 pending, 3 queued behind a gap
        pool.add(legacy(0, nonce), ALICE, RICH)
    pool.add(legacy(1, 5), BOB, RICH)  # queued only
    assert [(tx.nonce) for tx in pool.waiting()] == [0, 1, 3, 5]
    assert [tx.nonce for tx in pool.executable()] == [0, 1]
