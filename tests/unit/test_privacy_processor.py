"""``PrivacyProcessor`` end to end in one process: a private deploy of SimpleStorage and a
private ``set`` go through ``Node`` with ``PrivateBlocks`` over a fake manager, on a party
that builds the blocks, a party that imports them and a non-party that imports them."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from eth._utils.address import generate_contract_address
from eth.constants import BLANK_ROOT_HASH
from eth.db.atomic import AtomicDB
from eth_abi import encode
from eth_typing import Address
from eth_utils import function_signature_to_4byte_selector

from quorum_node.chain.service import ChainService
from quorum_node.node import Node
from quorum_node.privacy.payloads import PayloadResolver
from quorum_node.privacy.processor import PrivacyProcessor, PrivateBlocks
from quorum_node.privacy.state import private_state
from quorum_node.privacy.store import PrivateContract, PrivateStore
from tests.support.fake_manager import (
    KEY_A,
    KEY_B,
    Answer,
    FakeManager,
    group_of,
    receive_result,
)
from tests.support.inproc import ADDRESSES, KEYS, bytecode, genesis, private_transaction
from tests.unit.conftest import NodeFactory

pytestmark = pytest.mark.timeout(20)

SENDER_KEY, SENDER = KEYS[0], ADDRESSES[0]
PARTIES = [KEY_A, KEY_B]
GROUP = group_of(PARTIES)
DEPLOY_HASH = b"\xd1" * 64
SET_HASH = b"\x5e" * 64
DEPLOY_PAYLOAD = bytecode("SimpleStorage") + encode(["uint256"], [42])
SET_PAYLOAD = function_signature_to_4byte_selector("set(uint256)") + encode(["uint256"], [7])
CONTRACT = Address(generate_contract_address(SENDER, 0))


@dataclass
class Participant:
    node: Node
    store: PrivateStore
    db: AtomicDB
    manager: FakeManager

    @property
    def chain(self) -> ChainService:
        return self.node.chain

    def stored_data(self, block_hash: bytes) -> int:
        header = self.chain.header_by_hash(block_hash)
        assert header is not None
        root = self.store.roots_after(block_hash)[GROUP]
        state = private_state(self.chain.vm_at(header), self.db, root)
        return int(state.get_storage(CONTRACT, 0))


def participant(make_node: NodeFactory, *, party: bool) -> Participant:
    """A node over an in-memory database whose manager holds the two payloads for a
    party (and answers 404 for a non-party)."""
    answers: dict[bytes, list[Answer]] = {
        DEPLOY_HASH: [receive_result(DEPLOY_PAYLOAD, PARTIES) if party else None],
        SET_HASH: [receive_result(SET_PAYLOAD, PARTIES) if party else None],
    }
    manager = FakeManager(answers=answers)
    db = AtomicDB()
    store = PrivateStore(db)
    private_blocks = PrivateBlocks(
        PayloadResolver(manager.as_client()), PrivacyProcessor(db, store)
    )
    node = make_node(ChainService(db, genesis(), private_view=store), private_blocks=private_blocks)
    return Participant(node, store, db, manager)


async def import_all(builder: Participant, follower: Participant) -> None:
    start = follower.node.head.block_number + 1
    encoded = await builder.node.encoded_blocks(start, builder.node.head.block_number)
    for block in await follower.node.decode_blocks(encoded):
        await follower.node.import_block(block)


async def test_a_private_deploy_runs_for_the_parties_only(make_node: NodeFactory) -> None:
    builder = participant(make_node, party=True)
    other_party = participant(make_node, party=True)
    stranger = participant(make_node, party=False)
    deploy = private_transaction(SENDER_KEY, 0, DEPLOY_HASH)
    await builder.node.submit(deploy)

    committed = await builder.node.produce_block(allow_empty=False)
    assert committed is not None
    block_hash = committed.block.hash
    await import_all(builder, other_party)
    await import_all(builder, stranger)

    # the party that built the block
    record = builder.store.record(deploy.hash)
    assert record is not None
    assert (record.status, record.contract_address) == (1, CONTRACT)
    assert len(record.logs) == 1 and record.logs[0].address == CONTRACT
    assert builder.chain.record(deploy.hash) == record
    assert committed.records == (record,)
    roots = builder.store.roots_after(block_hash)
    assert set(roots) == {GROUP} and roots[GROUP] != BLANK_ROOT_HASH
    assert builder.store.contract(CONTRACT) == PrivateContract(GROUP, deploy.hash, 0)
    assert builder.store.group_members(GROUP) == sorted(PARTIES)
    assert builder.stored_data(block_hash) == 42
    assert builder.store.private_bloom(block_hash) != 0
    assert builder.chain.head_state().get_code(CONTRACT) == b""
    assert builder.manager.asked == [DEPLOY_HASH]

    # the non-party: the public side only
    assert stranger.node.head.hash == builder.node.head.hash
    assert stranger.store.record(deploy.hash) is None
    public = stranger.chain.record(deploy.hash)
    assert public is not None and (public.status, public.logs) == (1, ())
    assert stranger.store.roots_after(block_hash) == {}
    assert stranger.store.contract(CONTRACT) is None
    assert stranger.store.private_bloom(block_hash) == 0
    assert stranger.manager.asked == [DEPLOY_HASH]

    # another party importing the block reaches the same group root and record
    assert other_party.store.roots_after(block_hash) == roots
    assert other_party.store.record(deploy.hash) == record
    assert other_party.store.contract(CONTRACT) == PrivateContract(GROUP, deploy.hash, 0)


async def test_group_roots_carry_over_and_move_only_with_the_groups_transactions(
    make_node: NodeFactory,
) -> None:
    builder = participant(make_node, party=True)
    other_party = participant(make_node, party=True)
    stranger = participant(make_node, party=False)
    await builder.node.submit(private_transaction(SENDER_KEY, 0, DEPLOY_HASH))
    deployed = await builder.node.produce_block(allow_empty=False)
    empty = await builder.node.produce_block(allow_empty=True)
    set_call = private_transaction(SENDER_KEY, 1, SET_HASH, to=CONTRACT, gas=200_000)
    await builder.node.submit(set_call)
    changed = await builder.node.produce_block(allow_empty=False)
    assert deployed is not None and empty is not None and changed is not None

    await import_all(builder, other_party)
    await import_all(builder, stranger)

    roots = [builder.store.roots_after(c.block.hash)[GROUP] for c in (deployed, empty, changed)]
    assert roots[0] == roots[1] != roots[2]
    assert builder.stored_data(changed.block.hash) == 7
    assert other_party.stored_data(changed.block.hash) == 7
    for committed in (deployed, empty, changed):
        block_hash = committed.block.hash
        assert other_party.store.roots_after(block_hash) == builder.store.roots_after(block_hash)
        assert stranger.store.roots_after(block_hash) == {}
    record = builder.store.record(set_call.hash)
    assert record is not None and record.status == 1 and len(record.logs) == 1
    assert other_party.store.record(set_call.hash) == record
    assert stranger.store.record(set_call.hash) is None
    assert stranger.node.head.state_root == builder.node.head.state_root
