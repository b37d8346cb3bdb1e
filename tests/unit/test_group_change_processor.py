"""A group change through ``PrivacyProcessor`` in one process, on three parties over fake
managers: A builds the blocks and stays, B is removed, C joins. Group G = {A, B} holds
SimpleStorage; the change makes it G′ = {A, C} at the block H of C's approval."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from eth._utils.address import generate_contract_address
from eth.db.atomic import AtomicDB
from eth_abi import encode
from eth_typing import Address
from eth_utils import function_signature_to_4byte_selector

from quorum_node.chain.service import ChainService
from quorum_node.node import Node
from quorum_node.privacy import group_change as gc
from quorum_node.privacy.handover import collect_accounts, rebuild
from quorum_node.privacy.payloads import PayloadResolver
from quorum_node.privacy.processor import PrivacyProcessor, PrivateBlocks
from quorum_node.privacy.state import private_state
from quorum_node.privacy.store import PrivateStore
from tests.support.fake_manager import KEY_A, KEY_B, KEY_C, Answer, FakeManager, group_of
from tests.support.fake_manager import receive_result as received
from tests.support.inproc import ADDRESSES, KEYS, bytecode, genesis, private_transaction
from tests.unit.conftest import NodeFactory

pytestmark = pytest.mark.timeout(30)

SENDER_KEY, SENDER = KEYS[0], ADDRESSES[0]
OLD, NEW = group_of([KEY_A, KEY_B]), group_of([KEY_A, KEY_C])
CONTRACT = Address(generate_contract_address(SENDER, 0))


def store_call(value: int) -> bytes:
    return function_signature_to_4byte_selector("set(uint256)") + encode(["uint256"], [value])


#: hash → (payload, parties, sender key); the same script for every party's manager.
SCRIPT: dict[bytes, tuple[bytes, list[str], str]] = {
    b"\x01" * 64: (bytecode("SimpleStorage") + encode(["uint256"], [42]), [KEY_A, KEY_B], KEY_A),
    b"\x02" * 64: (gc.encode(gc.Proposal(OLD, (KEY_C,), (KEY_B,))), [KEY_A, KEY_B, KEY_C], KEY_A),
    b"\x03" * 64: (b"", [KEY_A, KEY_B, KEY_C], KEY_B),  # B's vote (its change id below)
    b"\x04" * 64: (b"", [KEY_A, KEY_B, KEY_C], KEY_C),  # C's vote: activation, H
    b"\x05" * 64: (store_call(7), [KEY_A, KEY_B], KEY_B),  # G, ordered in H: runs in G
    b"\x06" * 64: (store_call(9), [KEY_A, KEY_B], KEY_B),  # G after H: refused
    b"\x07" * 64: (store_call(11), [KEY_A, KEY_C], KEY_A),  # G′ after H
}


@dataclass
class Party:
    node: Node
    store: PrivateStore
    db: AtomicDB
    processor: PrivacyProcessor

    @property
    def chain(self) -> ChainService:
        return self.node.chain

    def stored(self, block_hash: bytes, group: bytes) -> int:
        header = self.chain.header_by_hash(block_hash)
        assert header is not None
        root = self.store.roots_after(block_hash)[group]
        return int(private_state(self.chain.vm_at(header), self.db, root).get_storage(CONTRACT, 0))


def party(make_node: NodeFactory, own: str, change_id: bytes) -> Party:
    answers: dict[bytes, list[Answer]] = {}
    for payload_hash, (payload, parties, sender) in SCRIPT.items():
        if payload == b"":
            payload = gc.encode(gc.Vote(change_id, True))
        answers[payload_hash] = [received(payload, parties, sender) if own in parties else None]
    db = AtomicDB()
    store = PrivateStore(db)
    processor = PrivacyProcessor(db, store)
    resolver = PayloadResolver(FakeManager(own, answers).as_client())
    node = make_node(
        ChainService(db, genesis(), private_view=store),
        private_blocks=PrivateBlocks(resolver, processor),
    )
    return Party(node, store, db, processor)


async def test_the_group_moves_at_h_for_those_who_stay_leave_and_join(
    make_node: NodeFactory,
) -> None:
    proposal = private_transaction(SENDER_KEY, 1, b"\x02" * 64, to=gc.GROUP_CHANGE_ADDRESS)
    change_id = bytes(proposal.hash)
    a, b, c = (party(make_node, key, change_id) for key in (KEY_A, KEY_B, KEY_C))
    blocks = [
        [private_transaction(SENDER_KEY, 0, b"\x01" * 64)],
        [proposal],
        [private_transaction(SENDER_KEY, 2, b"\x03" * 64, to=gc.GROUP_CHANGE_ADDRESS)],
        [
            private_transaction(SENDER_KEY, 3, b"\x04" * 64, to=gc.GROUP_CHANGE_ADDRESS),
            private_transaction(SENDER_KEY, 4, b"\x05" * 64, to=CONTRACT, gas=200_000),
        ],
        [
            late := private_transaction(SENDER_KEY, 5, b"\x06" * 64, to=CONTRACT, gas=200_000),
            moved := private_transaction(SENDER_KEY, 6, b"\x07" * 64, to=CONTRACT, gas=200_000),
        ],
    ]
    hashes = []
    for transactions in blocks:
        for transaction in transactions:
            await a.node.submit(transaction)
        committed = await a.node.produce_block(allow_empty=False)
        assert committed is not None and len(committed.block.transactions) == len(transactions)
        hashes.append(committed.block.hash)
    for follower in (b, c):
        encoded = await a.node.encoded_blocks(1, a.node.head.block_number)
        for block in await follower.node.decode_blocks(encoded):
            await follower.node.import_block(block)
    at_h, after = hashes[3], hashes[4]

    for member in (a, b, c):
        change = member.store.change(change_id)
        assert change is not None and (change.status, change.final_block) == (gc.ACTIVE, 4)
    # In H, G's transaction ran in G; after H, G's transaction fails on both old members.
    assert a.stored(at_h, OLD) == b.stored(at_h, OLD) == 7
    for old_member in (a, b):
        refused = old_member.store.record(late.hash)
        assert refused is not None and refused.status == 0
    # A stays: G′ starts from G's root at H and runs G′'s transaction; G is gone after H.
    assert set(a.store.roots_after(after)) == {NEW}
    assert a.stored(after, NEW) == 11
    contract = a.store.contract(CONTRACT)
    assert contract is not None and contract.group_id == NEW
    # B leaves: G frozen at H, nothing of G′.
    assert b.store.roots_after(after) == {} and b.store.record(moved.hash) is None
    assert b.stored(at_h, OLD) == 7
    # C joined: it skipped G′ until its state arrives, then catches up to A's root.
    assert c.store.pending_groups() == {NEW: change_id}
    assert c.store.record(moved.hash) is None and c.store.roots_after(after) == {}
    state = rebuild(collect_accounts(a.db, a.store.roots_after(at_h)[OLD]))
    state.install(c.db)
    chain = c.chain
    header = chain.header_by_hash(after)
    assert header is not None
    block = chain.block_of(header)
    resolved = await PayloadResolver(
        FakeManager(KEY_C, {b"\x07" * 64: [received(store_call(11), [KEY_A, KEY_C])]}).as_client()
    ).resolve([b"\x07" * 64])
    c.processor.catch_up(chain.chain, NEW, state.root, [(block, chain.records_of(block))], resolved)
    assert c.store.roots_after(after) == a.store.roots_after(after)
    record = c.store.record(moved.hash)
    assert record is not None and record == a.store.record(moved.hash)
