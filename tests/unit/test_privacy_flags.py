"""GoQuorum's privacy flags in one process: the request checks (``privacy.params``), the
contract metadata record (old records still read), the submission checks of
``PrivacyService`` (nothing leaves for the manager when refused), and the execution-time
refusal of a crafted transaction: every party fails it alike (status 0, no change)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import rlp
from eth._utils.address import generate_contract_address
from eth.db.atomic import AtomicDB
from eth_abi import encode
from eth_typing import Address, Hash32
from eth_utils import function_signature_to_4byte_selector

from quorum_node.chain.service import ChainService
from quorum_node.node import Node
from quorum_node.privacy.flags import FLAG_MISMATCH, flag_violation
from quorum_node.privacy.params import InvalidPrivacyParams, PrivacyError, parse_privacy
from quorum_node.privacy.payloads import PayloadResolver
from quorum_node.privacy.processor import PrivacyProcessor, PrivateBlocks
from quorum_node.privacy.service import PrivacyService
from quorum_node.privacy.state import private_state
from quorum_node.privacy.store import PrivateContract, PrivateStore
from quorum_node.sending import NonceReservations, TransactionSender
from quorum_node.transaction_request import TransactionRequest
from tests.support.fake_manager import (
    KEY_A,
    KEY_B,
    KEY_C,
    Answer,
    FakeManager,
    group_of,
    receive_result,
)
from tests.support.inproc import ADDRESSES, KEYS, bytecode, genesis, private_transaction
from tests.unit.conftest import NodeFactory

pytestmark = pytest.mark.timeout(30)

SENDER_KEY, SENDER = KEYS[0], ADDRESSES[0]
GROUP = group_of([KEY_A, KEY_B])
CONTRACT = Address(generate_contract_address(SENDER, 0))
DEPLOY_PAYLOAD = bytecode("SimpleStorage") + encode(["uint256"], [42])


def set_payload(value: int) -> bytes:
    return function_signature_to_4byte_selector("set(uint256)") + encode(["uint256"], [value])


# --- the request ------------------------------------------------------------------


@pytest.mark.parametrize("flag", [0, 1, 3])
def test_flags_0_1_and_3_are_accepted(flag: int) -> None:
    privacy = parse_privacy({"privateFor": [KEY_B], "privacyFlag": flag})
    assert privacy is not None and privacy.privacy_flag == flag and privacy.mandatory_for == ()


def test_flag_2_takes_mandatory_for() -> None:
    privacy = parse_privacy(
        {"privateFor": [KEY_B, KEY_C], "privacyFlag": 2, "mandatoryFor": [KEY_C]}
    )
    assert privacy is not None and privacy.mandatory_for == (KEY_C,)
    privacy.check_mandatory_among_parties(KEY_A)


def test_the_request_checks_give_goquorums_messages() -> None:
    with pytest.raises(InvalidPrivacyParams, match="invalid privacy flag"):
        parse_privacy({"privateFor": [KEY_B], "privacyFlag": 4})
    with pytest.raises(PrivacyError, match=r"^missing mandatory recipients data\. if no"):
        parse_privacy({"privateFor": [KEY_B], "privacyFlag": 2})
    with pytest.raises(PrivacyError, match=r"^privacy metadata invalid\. mandatory recipients"):
        parse_privacy({"privateFor": [KEY_B], "privacyFlag": 1, "mandatoryFor": [KEY_B]})
    with pytest.raises(InvalidPrivacyParams, match="need privateFor"):
        parse_privacy({"mandatoryFor": [KEY_B]})
    with pytest.raises(InvalidPrivacyParams, match=r"mandatoryFor\[0\]"):
        parse_privacy({"privateFor": [KEY_B], "privacyFlag": 2, "mandatoryFor": ["x"]})
    outside = parse_privacy({"privateFor": [KEY_B], "privacyFlag": 2, "mandatoryFor": [KEY_C]})
    assert outside is not None
    with pytest.raises(PrivacyError, match="One or more mandatory recipients not included"):
        outside.check_mandatory_among_parties(KEY_A)


def test_flag_violation_follows_goquorum() -> None:
    creation = Hash32(b"\x01" * 32)
    standard = PrivateContract(GROUP, creation, 0)
    protected = PrivateContract(GROUP, creation, 1)
    mandatory = PrivateContract(GROUP, creation, 2, (KEY_B,))
    assert flag_violation(CONTRACT, standard, 0, ()) is None
    assert "does not have privacy metadata" in str(flag_violation(CONTRACT, standard, 1, ()))
    assert flag_violation(CONTRACT, protected, 0, ()) == FLAG_MISMATCH
    assert flag_violation(CONTRACT, protected, 3, ()) == FLAG_MISMATCH
    assert flag_violation(CONTRACT, protected, 1, ()) is None
    assert flag_violation(CONTRACT, mandatory, 2, (KEY_B, KEY_C)) is None
    assert flag_violation(CONTRACT, mandatory, 2, (KEY_C,)) == (
        "Privacy metadata mismatched with Affected Txn 0x" + "01" * 32
    )
    assert flag_violation(CONTRACT, mandatory, 1, ()) == FLAG_MISMATCH


# --- the contract record ----------------------------------------------------------


def test_a_version_1_contract_record_still_reads() -> None:
    creation = Hash32(b"\x02" * 32)
    version_1 = bytes(rlp.encode([1, GROUP, creation, 1]))  # frozen: the format before flag 2
    assert PrivateContract.from_bytes(version_1) == PrivateContract(GROUP, creation, 1, ())
    current = PrivateContract(GROUP, creation, 2, (KEY_C, KEY_B))
    assert PrivateContract.from_bytes(current.to_bytes()) == PrivateContract(
        GROUP, creation, 2, (KEY_B, KEY_C)
    )


# --- submission -------------------------------------------------------------------


@dataclass
class Sender:
    node: Node
    store: PrivateStore
    manager: FakeManager
    service: PrivacyService

    async def send(self, extra: dict[str, object], data: bytes, to: Address | None = None) -> None:
        request = TransactionRequest(sender=SENDER, to=to, gas=300_000, data=data, extra=extra)
        await self.service.send_transaction(request)


def sender_node(make_node: NodeFactory) -> Sender:
    manager = FakeManager(own_key=KEY_A)
    db = AtomicDB()
    store = PrivateStore(db)
    node = make_node(
        ChainService(db, genesis(), private_view=store),
        private_blocks=PrivateBlocks(
            PayloadResolver(manager.as_client()), PrivacyProcessor(db, store)
        ),
        held_keys=(SENDER_KEY,),
    )
    service = PrivacyService(
        node, TransactionSender(node, NonceReservations(node)), store, manager.as_client()
    )
    return Sender(node, store, manager, service)


async def deployed(make_node: NodeFactory, privacy: dict[str, object]) -> Sender:
    setup = sender_node(make_node)
    await setup.send(privacy, DEPLOY_PAYLOAD)
    assert await setup.node.produce_block(allow_empty=False) is not None
    setup.manager.events.clear()
    return setup


async def test_a_call_without_the_contracts_flag_is_refused_before_anything_leaves(
    make_node: NodeFactory,
) -> None:
    setup = await deployed(make_node, {"privateFor": [KEY_B], "privacyFlag": 1})
    assert setup.store.contract(CONTRACT) == PrivateContract(GROUP, setup_creation(setup), 1)

    for flag in (0, 3):
        with pytest.raises(PrivacyError, match=f"^{FLAG_MISMATCH}$"):
            await setup.send({"privateFor": [KEY_B], "privacyFlag": flag}, set_payload(7), CONTRACT)
    with pytest.raises(PrivacyError, match=r"^contract not found\. cannot transact$"):
        await setup.send(
            {"privateFor": [KEY_B], "privacyFlag": 1}, set_payload(7), Address(b"\x09" * 20)
        )
    assert setup.manager.events == []
    assert len(setup.node.pool) == 0

    await setup.send({"privateFor": [KEY_B], "privacyFlag": 1}, set_payload(7), CONTRACT)
    assert [kind for kind, _ in setup.manager.events] == ["send"]


async def test_a_flag_sent_to_a_standard_contract_is_refused(make_node: NodeFactory) -> None:
    setup = await deployed(make_node, {"privateFor": [KEY_B]})
    with pytest.raises(PrivacyError, match="^PrivacyMetadata not found: "):
        await setup.send({"privateFor": [KEY_B], "privacyFlag": 1}, set_payload(7), CONTRACT)
    assert setup.manager.events == []


async def test_mandatory_recipients_are_recorded_and_required(make_node: NodeFactory) -> None:
    outsider = sender_node(make_node)
    with pytest.raises(PrivacyError, match="One or more mandatory recipients not included"):
        await outsider.send(
            {"privateFor": [KEY_B], "privacyFlag": 2, "mandatoryFor": [KEY_C]}, DEPLOY_PAYLOAD
        )
    assert outsider.manager.events == []

    mandatory = {"privateFor": [KEY_B], "privacyFlag": 2, "mandatoryFor": [KEY_B]}
    setup = await deployed(make_node, mandatory)
    stored = setup.store.contract(CONTRACT)
    assert stored is not None and (stored.privacy_flag, stored.mandatory_for) == (2, (KEY_B,))

    with pytest.raises(PrivacyError, match=r"^missing mandatory recipients data"):
        await setup.send({"privateFor": [KEY_B], "privacyFlag": 2}, set_payload(7), CONTRACT)
    with pytest.raises(PrivacyError, match="^Privacy metadata mismatched with Affected Txn 0x"):
        await setup.send(
            {"privateFor": [KEY_B], "privacyFlag": 2, "mandatoryFor": [KEY_A]},
            set_payload(7),
            CONTRACT,
        )
    with pytest.raises(PrivacyError, match=f"^{FLAG_MISMATCH}$"):
        await setup.send({"privateFor": [KEY_B], "privacyFlag": 1}, set_payload(7), CONTRACT)
    assert setup.manager.events == []

    await setup.send(mandatory, set_payload(7), CONTRACT)
    assert await setup.node.produce_block(allow_empty=False) is not None
    assert stored_value(setup.node, setup.store, setup.node.head.hash) == 7


def setup_creation(setup: Sender) -> Hash32:
    stored = setup.store.contract(CONTRACT)
    assert stored is not None
    return stored.creation_transaction


def stored_value(node: Node, store: PrivateStore, block_hash: bytes) -> int:
    header = node.chain.header_by_hash(block_hash)
    assert header is not None
    state = private_state(
        node.chain.vm_at(header), node.chain.db, store.roots_after(block_hash)[GROUP]
    )
    return int(state.get_storage(CONTRACT, 0))


# --- execution --------------------------------------------------------------------

DEPLOY_HASH = b"\xd1" * 64
CRAFTED_HASH = b"\xc4" * 64
GOOD_HASH = b"\x90" * 64


@dataclass
class Party:
    node: Node
    store: PrivateStore


def party(make_node: NodeFactory, answers: dict[bytes, list[Answer]]) -> Party:
    manager = FakeManager(answers=answers)
    db = AtomicDB()
    store = PrivateStore(db)
    node = make_node(
        ChainService(db, genesis(), private_view=store),
        private_blocks=PrivateBlocks(
            PayloadResolver(manager.as_client()), PrivacyProcessor(db, store)
        ),
    )
    return Party(node, store)


async def import_all(builder: Party, follower: Party) -> None:
    start = follower.node.head.block_number + 1
    encoded = await builder.node.encoded_blocks(start, builder.node.head.block_number)
    for block in await follower.node.decode_blocks(encoded):
        await follower.node.import_block(block)


@pytest.mark.parametrize(
    ("contract_flag", "contract_mandatory", "crafted_flag", "crafted_mandatory"),
    [
        (1, [], 0, []),
        (3, [], 1, []),
        (0, [], 3, []),
        (2, [KEY_B], 2, [KEY_A]),
        (2, [KEY_B], 1, []),
    ],
)
async def test_a_crafted_transaction_with_the_wrong_flag_fails_alike_on_every_party(
    make_node: NodeFactory,
    contract_flag: int,
    contract_mandatory: list[str],
    crafted_flag: int,
    crafted_mandatory: list[str],
) -> None:
    """The envelope's flag is what counts: the transaction passed no submission check
    (it was crafted), and both parties refuse it at execution with the same result."""
    parties = [KEY_A, KEY_B]

    def answers() -> dict[bytes, list[Answer]]:
        return {
            DEPLOY_HASH: [
                receive_result(
                    DEPLOY_PAYLOAD,
                    parties,
                    privacy_flag=contract_flag,
                    mandatory_recipients=contract_mandatory,
                )
            ],
            CRAFTED_HASH: [
                receive_result(
                    set_payload(7),
                    parties,
                    privacy_flag=crafted_flag,
                    mandatory_recipients=crafted_mandatory,
                )
            ],
            GOOD_HASH: [
                receive_result(
                    set_payload(9),
                    parties,
                    privacy_flag=contract_flag,
                    mandatory_recipients=contract_mandatory,
                )
            ],
        }

    builder, other = party(make_node, answers()), party(make_node, answers())
    await builder.node.submit(private_transaction(SENDER_KEY, 0, DEPLOY_HASH))
    deploy_block = await builder.node.produce_block(allow_empty=False)
    crafted = private_transaction(SENDER_KEY, 1, CRAFTED_HASH, to=CONTRACT, gas=200_000)
    await builder.node.submit(crafted)
    crafted_block = await builder.node.produce_block(allow_empty=False)
    good = private_transaction(SENDER_KEY, 2, GOOD_HASH, to=CONTRACT, gas=200_000)
    await builder.node.submit(good)
    good_block = await builder.node.produce_block(allow_empty=False)
    assert deploy_block and crafted_block and good_block
    await import_all(builder, other)

    for member in (builder, other):
        contract = member.store.contract(CONTRACT)
        assert contract is not None and contract.privacy_flag == contract_flag
        assert contract.mandatory_for == tuple(contract_mandatory)
        record = member.store.record(crafted.hash)
        assert record is not None and (record.status, record.logs) == (0, ())
        # the refused transaction changed no contract (its value below), and every party
        # reached the same group root (which chains the transaction into the history)
        assert member.store.roots_after(crafted_block.block.hash) == builder.store.roots_after(
            crafted_block.block.hash
        )
        assert stored_value(member.node, member.store, crafted_block.block.hash) == 42
        good_record = member.store.record(good.hash)
        assert good_record is not None and good_record.status == 1
        assert stored_value(member.node, member.store, good_block.block.hash) == 9
    assert builder.store.record(crafted.hash) == other.store.record(crafted.hash)
    assert builder.store.roots_after(good_block.block.hash) == other.store.roots_after(
        good_block.block.hash
    )
    assert other.node.head.hash == builder.node.head.hash


async def test_a_contract_reached_through_another_is_checked_at_execution(
    make_node: NodeFactory,
) -> None:
    """A flag-0 call to a flag-0 CounterCaller that writes a flag-1 Counter passes the
    target's check; execution finds the Counter among the touched contracts and fails
    the transaction on every party (GoQuorum's affected contracts)."""
    parties = [KEY_A, KEY_B]
    counter = Address(generate_contract_address(SENDER, 0))
    caller = Address(generate_contract_address(SENDER, 1))
    hashes = [bytes([n]) * 64 for n in (1, 2, 3)]
    payloads_and_flags = [
        (bytecode("Counter"), 1),
        (bytecode("CounterCaller") + encode(["address"], [counter]), 0),
        (function_signature_to_4byte_selector("writeTarget()"), 0),
    ]

    def answers() -> dict[bytes, list[Answer]]:
        return {
            payload_hash: [receive_result(payload, parties, privacy_flag=flag)]
            for payload_hash, (payload, flag) in zip(hashes, payloads_and_flags, strict=True)
        }

    builder, other = party(make_node, answers()), party(make_node, answers())
    for nonce, payload_hash in enumerate(hashes):
        to = caller if nonce == 2 else None
        await builder.node.submit(private_transaction(SENDER_KEY, nonce, payload_hash, to=to))
        assert await builder.node.produce_block(allow_empty=False) is not None
    await import_all(builder, other)

    write = private_transaction(SENDER_KEY, 2, hashes[2], to=caller)
    for member in (builder, other):
        stored = member.store.contract(counter)
        assert stored is not None and stored.privacy_flag == 1
        record = member.store.record(write.hash)
        assert record is not None and record.status == 0
        header = member.node.chain.header_by_hash(member.node.head.hash)
        assert header is not None
        root = member.store.roots_after(member.node.head.hash)[GROUP]
        state = private_state(member.node.chain.vm_at(header), member.node.chain.db, root)
        assert int(state.get_storage(counter, 0)) == 0
    assert builder.store.roots_after(builder.node.head.hash) == other.store.roots_after(
        other.node.head.hash
    )
