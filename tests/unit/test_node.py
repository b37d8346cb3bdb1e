"""``Node`` on an in-memory chain: admission with geth's refusals, batched admission and
its fault path, block building (solo and prepared), import by a second node, the wire
encoding of blocks, and the build fallback when the manager is down."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, cast

import pytest
from eth.abc import BlockAPI, ChainAPI, SignedTransactionAPI, StateAPI

from quorum_node.chain.blocks import encode_block
from quorum_node.chain.records import TransactionRecord
from quorum_node.chain.service import ChainService, CommittedBlock
from quorum_node.chain.transactions import QuorumLegacyTransaction, is_private
from quorum_node.errors import ChainError, PrivateDataUnavailable, TransactionRejected
from tests.support.inproc import (
    ADDRESSES,
    KEYS,
    PENNILESS_KEY,
    RECIPIENT,
    MemoryOverlayDB,
    genesis,
    private_transaction,
    transfer,
)
from tests.unit.conftest import NodeFactory

pytestmark = pytest.mark.timeout(20)

ALICE, BOB = KEYS[0], KEYS[1]


class FlakyChain(ChainService):
    """A chain whose admission check (``head_state``) fails the next ``failures`` times
    with an error that is not a refusal, and which counts the checks."""

    def __init__(self, failures: int = 0) -> None:
        super().__init__(MemoryOverlayDB(), genesis())
        self.failures = failures
        self.head_state_calls = 0

    def head_state(self) -> StateAPI:
        self.head_state_calls += 1
        if self.failures:
            self.failures -= 1
            raise RuntimeError("the disk caught fire")
        return super().head_state()


async def rejection(node_submit: Any) -> str:
    with pytest.raises(TransactionRejected) as caught:
        await node_submit
    return str(caught.value)


# --- admission -------------------------------------------------------------------------


async def test_a_valid_transaction_enters_the_pool(make_node: NodeFactory) -> None:
    node = make_node()
    transaction = transfer(ALICE, 0)

    transaction_hash = await node.submit(transaction)

    assert transaction_hash == transaction.hash
    assert node.is_waiting(transaction.hash)
    assert node.waiting_transactions() == [transaction]
    assert node.has_executable_transactions()


async def test_pending_listeners_hear_of_each_admitted_transaction(
    make_node: NodeFactory,
) -> None:
    node = make_node()
    heard: list[bytes] = []
    node.pending_listeners.append(heard.append)
    first, second = transfer(ALICE, 0), transfer(ALICE, 1)

    await node.submit(first)
    await node.submit(second)

    assert heard == [first.hash, second.hash]


async def test_geth_refusals_for_transactions_that_fail_a_stateless_check(
    make_node: NodeFactory,
) -> None:
    node = make_node()

    assert await rejection(node.submit(transfer(ALICE, 0, chain_id=999))) == (
        "invalid chain id for signer: have 999 want 1337"
    )
    assert await rejection(node.submit(transfer(ALICE, 0, gas=20_999))) == ("intrinsic gas too low")
    assert await rejection(node.submit(transfer(ALICE, 0, gas=node.head.gas_limit + 1))) == (
        "exceeds block gas limit"
    )
    assert len(node.pool) == 0


async def test_geth_refusals_for_transactions_that_fail_against_the_pool_or_state(
    make_node: NodeFactory,
) -> None:
    node = make_node()
    first = transfer(ALICE, 0, gas_price=100)
    await node.submit(first)

    assert await rejection(node.submit(first)) == "already known"
    assert await rejection(node.submit(transfer(ALICE, 0, value=2, gas_price=109))) == (
        "replacement transaction underpriced"
    )
    assert await rejection(node.submit(transfer(PENNILESS_KEY, 0))) == (
        "insufficient funds for gas * price + value"
    )
    assert node.waiting_transactions() == [first]

    await node.produce_block(allow_empty=False)

    assert await rejection(node.submit(transfer(ALICE, 0, value=3))) == "nonce too low"
    assert len(node.pool) == 0


async def test_a_replacement_paying_ten_percent_more_replaces_the_waiting_transaction(
    make_node: NodeFactory,
) -> None:
    node = make_node()
    old = transfer(ALICE, 0, gas_price=100)
    new = transfer(ALICE, 0, value=2, gas_price=110)
    await node.submit(old)

    await node.submit(new)

    assert node.waiting_transactions() == [new]
    assert not node.is_waiting(old.hash)


async def test_concurrent_submissions_are_checked_in_one_batch_each_with_its_own_answer(
    make_node: NodeFactory,
) -> None:
    chain = FlakyChain()
    node = make_node(chain)
    valid = [transfer(ALICE, nonce) for nonce in range(5)] + [transfer(BOB, 0)]
    wrong_chain = transfer(BOB, 1, chain_id=7)
    duplicate = valid[2]

    outcomes = await asyncio.gather(
        *(node.submit(tx) for tx in [*valid, wrong_chain, duplicate]), return_exceptions=True
    )

    assert chain.head_state_calls == 1
    assert outcomes[: len(valid)] == [tx.hash for tx in valid]
    assert isinstance(outcomes[-2], TransactionRejected)
    assert str(outcomes[-2]) == "invalid chain id for signer: have 7 want 1337"
    assert isinstance(outcomes[-1], TransactionRejected)
    assert str(outcomes[-1]) == "already known"
    assert len(node.pool) == len(valid)


async def test_an_unexpected_admission_fault_answers_every_waiting_submit_once(
    make_node: NodeFactory,
) -> None:
    """Issue 8 item 6: a fault inside admission must not leave sends waiting forever."""
    chain = FlakyChain(failures=1)
    node = make_node(chain)
    batch = [transfer(ALICE, nonce) for nonce in range(4)]

    outcomes = await asyncio.wait_for(
        asyncio.gather(*(node.submit(tx) for tx in batch), return_exceptions=True), timeout=5
    )

    assert [type(outcome) for outcome in outcomes] == [RuntimeError] * len(batch)
    assert {str(outcome) for outcome in outcomes} == {"the disk caught fire"}
    assert len(node.pool) == 0

    later = transfer(ALICE, 0)
    assert await asyncio.wait_for(node.submit(later), timeout=5) == later.hash
    assert node.waiting_transactions() == [later]


# --- building blocks -------------------------------------------------------------------


def nonces_by_sender(block: BlockAPI) -> dict[bytes, list[int]]:
    found: dict[bytes, list[int]] = {}
    for transaction in block.transactions:
        found.setdefault(bytes(transaction.sender), []).append(transaction.nonce)
    return found


async def test_produce_block_includes_the_pool_in_nonce_order_per_sender_and_empties_it(
    make_node: NodeFactory,
) -> None:
    node = make_node()
    heard: list[CommittedBlock] = []
    node.block_listeners.append(lambda committed: heard.append(committed))
    arrivals = [transfer(ALICE, 2), transfer(BOB, 1), transfer(ALICE, 0), transfer(ALICE, 1)]
    arrivals.append(transfer(BOB, 0))
    behind_a_gap = transfer(ALICE, 4)
    for transaction in [*arrivals, behind_a_gap]:
        await node.submit(transaction)

    committed = await node.produce_block(allow_empty=False)

    assert committed is not None
    assert committed.block.number == 1
    assert node.head.hash == committed.block.hash
    assert nonces_by_sender(committed.block) == {ADDRESSES[0]: [0, 1, 2], ADDRESSES[1]: [0, 1]}
    assert [record.status for record in committed.records] == [1] * len(arrivals)
    assert node.waiting_transactions() == [behind_a_gap]
    assert not node.has_executable_transactions()
    assert heard == [committed]
    state = node.chain.head_state()
    assert (state.get_nonce(ADDRESSES[0]), state.get_nonce(ADDRESSES[1])) == (3, 2)
    assert state.get_balance(RECIPIENT) == len(arrivals)
    for transaction in arrivals:
        record = node.chain.record(transaction.hash)
        assert record is not None
        assert record.block_hash == committed.block.hash
        assert committed.block.transactions[record.index] == transaction


async def test_produce_block_makes_an_empty_block_only_when_asked(
    make_node: NodeFactory,
) -> None:
    node = make_node()

    assert await node.produce_block(allow_empty=False) is None
    empty = await node.produce_block(allow_empty=True)

    assert empty is not None
    assert empty.block.number == 1
    assert empty.block.transactions == ()
    assert node.head.block_number == 1


async def test_a_prepared_block_commits_nothing_until_commit_prepared(
    make_node: NodeFactory,
) -> None:
    db = MemoryOverlayDB()
    node = make_node(ChainService(db, genesis()))
    transactions = [transfer(ALICE, nonce) for nonce in range(3)]
    for transaction in transactions:
        await node.submit(transaction)
    commits_before = len(db.commits)

    prepared = await node.prepare_block(allow_empty=False, max_transactions=2)

    assert prepared is not None
    assert list(prepared.block.transactions) == transactions[:2]
    assert len(db.commits) == commits_before
    assert node.head.block_number == 0
    assert node.chain.record(transactions[0].hash) is None
    assert len(node.pool) == 3
    assert (await node.decode_blocks([prepared.encoded]))[0].hash == prepared.block.hash

    committed = await node.commit_prepared(prepared)

    assert len(db.commits) == commits_before + 1
    assert committed.block.hash == prepared.block.hash
    assert node.head.hash == prepared.block.hash
    record = node.chain.record(transactions[1].hash)
    assert record is not None and record.block_hash == prepared.block.hash
    assert node.waiting_transactions() == [transactions[2]]


async def test_a_prepared_block_that_no_longer_extends_the_head_is_refused(
    make_node: NodeFactory,
) -> None:
    node = make_node()
    await node.submit(transfer(ALICE, 0))
    prepared = await node.prepare_block(allow_empty=False)
    assert prepared is not None
    await node.submit(transfer(BOB, 0))
    await node.produce_block(allow_empty=False)

    with pytest.raises(ChainError, match="prepared block #1 no longer extends the head"):
        await node.commit_prepared(prepared)

    assert node.head.block_number == 1
    assert node.head.hash != prepared.block.hash


async def test_a_second_node_imports_the_block_and_reaches_the_same_state(
    make_node: NodeFactory,
) -> None:
    builder, follower = make_node(), make_node()
    transactions = [transfer(ALICE, 0), transfer(BOB, 0), transfer(ALICE, 1, value=7)]
    for transaction in transactions:
        await builder.submit(transaction)
        await follower.submit(transaction)
    built = await builder.produce_block(allow_empty=False)
    assert built is not None

    (block,) = await follower.decode_blocks(await builder.encoded_blocks(1, 1))
    imported = await follower.import_block(block)

    assert follower.head.hash == builder.head.hash
    assert follower.head.state_root == builder.head.state_root
    assert imported.records == built.records
    assert len(follower.pool) == 0
    assert follower.chain.head_state().get_balance(RECIPIENT) == 9


async def test_import_refuses_a_block_that_does_not_extend_the_head_or_does_not_reexecute(
    make_node: NodeFactory,
) -> None:
    builder, follower = make_node(), make_node()
    await builder.submit(transfer(ALICE, 0))
    await builder.produce_block(allow_empty=False)
    await builder.produce_block(allow_empty=True)
    first, second = await follower.decode_blocks(await builder.encoded_blocks(1, 2))

    with pytest.raises(ChainError, match="block #2 does not extend the head #0"):
        await follower.import_block(second)
    forged = first.copy(header=first.header.copy(state_root=b"\x11" * 32))
    with pytest.raises(ChainError, match="block #1 is invalid"):
        await follower.import_block(forged)

    assert follower.head.block_number == 0
    await follower.import_block(first)
    await follower.import_block(second)
    assert follower.head.hash == builder.head.hash


async def test_encoded_blocks_and_decode_blocks_round_trip(make_node: NodeFactory) -> None:
    node = make_node()
    await node.submit(transfer(ALICE, 0))
    await node.produce_block(allow_empty=False)
    await node.produce_block(allow_empty=True)

    encoded = await node.encoded_blocks(0, 10)
    decoded = await node.decode_blocks(encoded)

    assert len(encoded) == 3
    expected = [node.chain.header_by_number(number) for number in range(3)]
    assert [block.hash for block in decoded] == [header.hash for header in expected if header]
    assert [encode_block(block) for block in decoded] == encoded
    assert len(decoded[1].transactions) == 1
    assert await node.encoded_blocks(3, 5) == []
    with pytest.raises(ChainError, match="block does not decode"):
        await node.decode_blocks([encoded[0], b"\xc2\x01\x02"])


# --- building while the manager is down ------------------------------------------------


class RecordedPrivateHalf:
    """A ``PrivateBlock`` that only remembers which blocks it ran for."""

    def __init__(self, executed: list[int]) -> None:
        self._executed = executed

    def execute(
        self, chain: ChainAPI, block: BlockAPI, public_records: tuple[TransactionRecord, ...]
    ) -> None:
        self._executed.append(block.number)


class SwitchableManager:
    """A ``PrivateBlockSource`` whose manager is down (``PrivateDataUnavailable`` for
    any private transaction) until ``up`` is set."""

    def __init__(self) -> None:
        self.up = False
        self.asked: list[tuple[list[SignedTransactionAPI], bool]] = []
        self.executed: list[int] = []
        self.closed = False

    async def for_block(
        self, transactions: Sequence[SignedTransactionAPI], *, patient: bool
    ) -> RecordedPrivateHalf:
        self.asked.append((list(transactions), patient))
        if not self.up and any(is_private(tx) for tx in transactions):
            raise PrivateDataUnavailable("the transaction manager did not answer")
        return RecordedPrivateHalf(self.executed)

    async def close(self) -> None:
        self.closed = True


async def test_with_the_manager_down_a_block_is_built_of_public_transactions_only(
    make_node: NodeFactory,
) -> None:
    manager = SwitchableManager()
    node = make_node(private_blocks=manager)
    alice_public = transfer(ALICE, 0)
    alice_private = private_transaction(ALICE, 1, b"\x5a" * 64, to=RECIPIENT)
    alice_after_private = transfer(ALICE, 2)
    bob_public = transfer(BOB, 0)
    for transaction in (alice_public, alice_private, alice_after_private, bob_public):
        await node.submit(transaction)

    first = await node.produce_block(allow_empty=False)

    assert first is not None
    assert list(first.block.transactions) == [alice_public, bob_public]
    assert [(len(candidates), patient) for candidates, patient in manager.asked] == [
        (4, False),
        (2, False),
    ]
    assert manager.asked[1][0] == [alice_public, bob_public]
    assert manager.executed == [1]
    assert node.waiting_transactions() == [alice_private, alice_after_private]

    manager.up = True
    second = await node.produce_block(allow_empty=False)

    assert second is not None
    assert list(second.block.transactions) == [alice_private, alice_after_private]
    assert manager.executed == [1, 2]
    assert len(node.pool) == 0
    assert node.chain.head_state().get_nonce(ADDRESSES[0]) == 3


async def test_closing_the_node_closes_its_private_block_source(make_node: NodeFactory) -> None:
    manager = SwitchableManager()
    node = make_node(private_blocks=manager)

    await node.close()

    assert manager.closed


async def test_a_transaction_with_a_broken_signature_is_refused_as_an_invalid_sender(
    make_node: NodeFactory,
) -> None:
    node = make_node()
    signed = cast(QuorumLegacyTransaction, transfer(ALICE, 0))
    broken = QuorumLegacyTransaction(
        nonce=signed.nonce,
        gas_price=signed.gas_price,
        gas=signed.gas,
        to=signed.to,
        value=signed.value,
        data=signed.data,
        v=signed.v,
        r=0,
        s=signed.s,
    )

    assert (await rejection(node.submit(broken))).startswith("invalid sender: ")
    assert len(node.pool) == 0
