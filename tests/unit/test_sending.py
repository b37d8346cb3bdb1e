"""``NonceReservations`` and ``TransactionSender`` on an in-memory node: concurrent sends
from one account take consecutive nonces in call order (geth's nonce lock), the lock is
held until the transaction is in the pool, and a failed send releases it."""

from __future__ import annotations

import asyncio

import pytest
from eth.abc import SignedTransactionAPI

from quorum_node.errors import InvalidTransactionRequest, TransactionRejected, UnknownAccount
from quorum_node.node import Node
from quorum_node.sending import NonceReservations, TransactionSender
from quorum_node.transaction_request import TransactionRequest
from tests.support.inproc import ADDRESSES, KEYS, RECIPIENT, transfer
from tests.unit.conftest import NodeFactory

pytestmark = pytest.mark.timeout(30)

HOLDER = ADDRESSES[0]


def payment(
    value: int = 1, *, gas: int | None = 21_000, nonce: int | None = None
) -> TransactionRequest:
    return TransactionRequest(sender=HOLDER, to=RECIPIENT, value=value, gas=gas, nonce=nonce)


def waiting(node: Node, transaction_hash: bytes) -> SignedTransactionAPI:
    found = node.pool.lookup(transaction_hash)
    assert found is not None, "not in the pool"
    return found[0]


def nonce_of(node: Node, transaction_hash: bytes) -> int:
    return int(waiting(node, transaction_hash).nonce)


def sender_for(node: Node) -> TransactionSender:
    return TransactionSender(node, NonceReservations(node))


async def test_concurrent_sends_from_one_account_take_consecutive_nonces_in_call_order(
    make_node: NodeFactory,
) -> None:
    node = make_node(held_keys=(KEYS[0],))
    sender = sender_for(node)
    # half of them leave gas out: estimating it awaits the chain thread under the lock
    requests = [payment(value, gas=None if value % 2 else 21_000) for value in range(1, 65)]

    hashes = await asyncio.gather(*(sender.send(request) for request in requests))

    assert [nonce_of(node, transaction_hash) for transaction_hash in hashes] == list(range(64))
    assert [waiting(node, h).value for h in hashes] == list(range(1, 65))
    committed = await node.produce_block(allow_empty=False)
    assert committed is not None
    assert [record.status for record in committed.records] == [1] * 64
    assert node.chain.head_state().get_nonce(HOLDER) == 64
    assert len(node.pool) == 0


async def test_the_lock_is_held_until_the_transaction_is_in_the_pool(
    make_node: NodeFactory,
) -> None:
    node = make_node(held_keys=(KEYS[0],))
    sender = sender_for(node)

    async with sender.nonces.reserve(HOLDER, None) as reserved:
        second = asyncio.create_task(sender.send(payment()))
        for _ in range(5):
            await asyncio.sleep(0)
        assert not second.done()
        assert len(node.pool) == 0
        await node.submit(transfer(KEYS[0], reserved))

    assert reserved == 0
    assert nonce_of(node, await asyncio.wait_for(second, timeout=5)) == 1


async def test_a_requested_nonce_is_used_as_given_and_the_pending_nonce_skips_no_gap(
    make_node: NodeFactory,
) -> None:
    node = make_node(held_keys=(KEYS[0],))
    sender = sender_for(node)

    later = await sender.send(payment(nonce=5))
    first = await sender.send(payment())

    assert (nonce_of(node, later), nonce_of(node, first)) == (5, 0)
    assert await sender.nonces.pending_nonce(HOLDER) == 1


async def test_a_failed_send_releases_the_account_for_the_next_one(
    make_node: NodeFactory,
) -> None:
    node = make_node(held_keys=(KEYS[0],))
    sender = sender_for(node)
    await sender.send(payment())
    await node.produce_block(allow_empty=False)

    results = await asyncio.gather(
        sender.send(payment(2, nonce=0)), sender.send(payment(3)), return_exceptions=True
    )

    assert isinstance(results[0], TransactionRejected)
    assert str(results[0]) == "nonce too low"
    assert isinstance(results[1], bytes)
    assert nonce_of(node, results[1]) == 1


async def test_sign_fills_the_pending_nonce_without_entering_the_pool(
    make_node: NodeFactory,
) -> None:
    node = make_node(held_keys=(KEYS[0],))
    sender = sender_for(node)
    await sender.send(payment())

    signed = await sender.sign(payment(value=9, gas=None))

    assert signed.nonce == 1
    assert signed.gas == 21_000
    assert signed.sender == HOLDER
    assert len(node.pool) == 1


async def test_only_held_accounts_can_send(make_node: NodeFactory) -> None:
    node = make_node(held_keys=(KEYS[0],))
    sender = sender_for(node)

    with pytest.raises(UnknownAccount, match="unknown account"):
        await sender.send(TransactionRequest(sender=ADDRESSES[1], to=RECIPIENT, gas=21_000))
    with pytest.raises(InvalidTransactionRequest, match='"from" is required'):
        await sender.send(TransactionRequest(to=RECIPIENT, gas=21_000))
    assert len(node.pool) == 0
