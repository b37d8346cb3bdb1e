"""``PrivacyService.send_transaction`` on an in-memory node with a fake manager: concurrent
private sends from one account take consecutive nonces, no payload reaches the manager
before its nonce is reserved, a payload whose transaction did not enter the pool is
deleted again, and a request the group check refuses sends nothing at all."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
from eth._utils.address import generate_contract_address
from eth.abc import AtomicDatabaseAPI, StateAPI
from eth.db.atomic import AtomicDB
from eth_abi import encode
from eth_typing import Address
from eth_utils import function_signature_to_4byte_selector

from quorum_node.chain.genesis import Genesis
from quorum_node.chain.service import ChainService, PrivateView
from quorum_node.chain.transactions import is_private
from quorum_node.errors import TransactionRejected
from quorum_node.node import Node
from quorum_node.privacy.params import PrivacyError
from quorum_node.privacy.payloads import PayloadResolver
from quorum_node.privacy.processor import PrivacyProcessor, PrivateBlocks
from quorum_node.privacy.service import PrivacyService
from quorum_node.privacy.store import PrivateStore
from quorum_node.sending import NonceReservations, TransactionSender
from quorum_node.transaction_request import TransactionRequest
from tests.support.fake_manager import KEY_A, KEY_B, KEY_C, FakeManager, group_of
from tests.support.inproc import ADDRESSES, KEYS, RECIPIENT, bytecode, genesis
from tests.unit.conftest import NodeFactory
from tx_manager.client import ManagerRequestFailed

pytestmark = pytest.mark.timeout(30)

HOLDER = ADDRESSES[0]


class RecordedReservations(NonceReservations):
    """Notes ("reserved", nonce) in ``events`` when a reservation is granted."""

    def __init__(self, node: Node, events: list[tuple[str, object]]) -> None:
        super().__init__(node)
        self._events = events

    @asynccontextmanager
    async def reserve(self, sender: Address, requested: int | None) -> AsyncIterator[int]:
        async with super().reserve(sender, requested) as nonce:
            self._events.append(("reserved", nonce))
            yield nonce


@dataclass
class PrivateSetup:
    node: Node
    store: PrivateStore
    manager: FakeManager
    service: PrivacyService


def private_setup(
    make_node: NodeFactory, chain_class: type[ChainService] = ChainService
) -> PrivateSetup:
    manager = FakeManager(own_key=KEY_A)
    db = AtomicDB()
    store = PrivateStore(db)
    node = make_node(
        chain_class(db, genesis(), private_view=store),
        private_blocks=PrivateBlocks(
            PayloadResolver(manager.as_client()), PrivacyProcessor(db, store)
        ),
        held_keys=(KEYS[0],),
    )
    sender = TransactionSender(node, RecordedReservations(node, manager.events))
    return PrivateSetup(
        node, store, manager, PrivacyService(node, sender, store, manager.as_client())
    )


def deploy(value: int, *, private_for: str = KEY_B, nonce: int | None = None) -> TransactionRequest:
    return TransactionRequest(
        sender=HOLDER,
        data=bytecode("SimpleStorage") + encode(["uint256"], [value]),
        nonce=nonce,
        extra={"privateFor": [private_for]},
    )


async def test_concurrent_private_sends_reserve_before_distributing_and_take_consecutive_nonces(
    make_node: NodeFactory,
) -> None:
    setup = private_setup(make_node)
    requests = [deploy(value) for value in range(24)]

    hashes = await asyncio.gather(
        *(setup.service.send_transaction(request) for request in requests)
    )

    payloads = [request.data for request in requests]
    assert setup.manager.events == [
        event
        for nonce, payload in enumerate(payloads)
        for event in (("reserved", nonce), ("send", payload))
    ]
    sent_hash_of = {payload: payload_hash for payload, payload_hash in setup.manager.sent}
    for nonce, (transaction_hash, payload) in enumerate(zip(hashes, payloads, strict=True)):
        found = setup.node.pool.lookup(transaction_hash)
        assert found is not None
        transaction, sender = found
        assert (transaction.nonce, sender) == (nonce, HOLDER)
        assert bytes(transaction.data) == sent_hash_of[payload]
        assert is_private(transaction)

    committed = await setup.node.produce_block(allow_empty=False)

    assert committed is not None
    assert len(committed.block.transactions) == 24
    group = group_of([KEY_A, KEY_B])
    for nonce, transaction_hash in enumerate(hashes):
        record = setup.store.record(transaction_hash)
        assert record is not None and record.status == 1
        contract = Address(generate_contract_address(HOLDER, nonce))
        assert record.contract_address == contract
        stored = setup.store.contract(contract)
        assert stored is not None and stored.group_id == group


async def test_a_payload_whose_transaction_is_refused_is_deleted_from_the_manager(
    make_node: NodeFactory,
) -> None:
    setup = private_setup(make_node)
    await setup.service.send_transaction(deploy(1))
    await setup.node.produce_block(allow_empty=False)
    setup.manager.events.clear()

    with pytest.raises(TransactionRejected, match="^nonce too low$"):
        await setup.service.send_transaction(deploy(2, nonce=0))

    refused_payload, refused_hash = setup.manager.sent[-1]
    assert setup.manager.events == [
        ("reserved", 0),
        ("send", refused_payload),
        ("delete", refused_hash),
    ]
    assert await setup.manager.receive(refused_hash) is None
    assert len(setup.node.pool) == 0
    after = await setup.service.send_transaction(deploy(3))
    found = setup.node.pool.lookup(after)
    assert found is not None and found[0].nonce == 1


async def test_a_manager_that_refuses_the_payload_leaves_nothing_behind(
    make_node: NodeFactory,
) -> None:
    setup = private_setup(make_node)
    setup.manager.send_failure = ManagerRequestFailed(500, "disk full")

    with pytest.raises(PrivacyError, match="refused the private payload: manager answered 500"):
        await setup.service.send_transaction(deploy(1))

    assert [kind for kind, _ in setup.manager.events] == ["reserved", "send"]
    assert len(setup.node.pool) == 0
    setup.manager.send_failure = None
    retried = await setup.service.send_transaction(deploy(1))
    found = setup.node.pool.lookup(retried)
    assert found is not None and found[0].nonce == 0


async def test_a_contract_of_another_group_is_refused_before_any_payload_leaves(
    make_node: NodeFactory,
) -> None:
    setup = private_setup(make_node)
    await setup.service.send_transaction(deploy(42, private_for=KEY_B))
    await setup.node.produce_block(allow_empty=False)
    contract = Address(generate_contract_address(HOLDER, 0))
    setup.manager.events.clear()
    call_set = TransactionRequest(
        sender=HOLDER,
        to=contract,
        gas=100_000,
        data=function_signature_to_4byte_selector("set(uint256)") + encode(["uint256"], [7]),
        extra={"privateFor": [KEY_C]},
    )

    with pytest.raises(
        PrivacyError, match="lives in party group 0x" + group_of([KEY_A, KEY_B]).hex()
    ):
        await setup.service.send_transaction(call_set)

    assert setup.manager.events == [("reserved", 1)]
    assert len(setup.node.pool) == 0


async def test_a_request_without_private_for_is_sent_publicly_without_the_manager(
    make_node: NodeFactory,
) -> None:
    setup = private_setup(make_node)

    transaction_hash = await setup.service.send_transaction(
        TransactionRequest(sender=HOLDER, to=RECIPIENT, value=5, gas=21_000)
    )

    found = setup.node.pool.lookup(transaction_hash)
    assert found is not None and found[0].value == 5 and not is_private(found[0])
    assert setup.manager.events == [("reserved", 0)]
    assert setup.manager.sent == []


class GatedChain(ChainService):
    """Once ``close_gate`` is called, the next ``head_state`` (admission's read, on the
    chain thread) waits for ``gate`` and says so through ``entered``."""

    def __init__(
        self, db: AtomicDatabaseAPI, genesis: Genesis, private_view: PrivateView | None = None
    ) -> None:
        super().__init__(db, genesis, private_view)
        self.gate: threading.Event | None = None
        self.entered = threading.Event()

    def close_gate(self) -> None:
        self.gate = threading.Event()

    def head_state(self) -> StateAPI:
        gate = self.gate
        if gate is not None:
            self.entered.set()
            gate.wait(timeout=5)
        return super().head_state()


async def test_a_send_cancelled_after_distributing_deletes_its_payload(
    make_node: NodeFactory,
) -> None:
    setup = private_setup(make_node, GatedChain)
    chain = setup.node.chain
    assert isinstance(chain, GatedChain)
    sending = asyncio.create_task(setup.service.send_transaction(deploy(1, nonce=0)))
    while not setup.manager.sent:
        await asyncio.sleep(0)
    chain.close_gate()
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(None, chain.entered.wait, 5), "admission never started"

    sending.cancel()
    assert chain.gate is not None
    chain.gate.set()
    with pytest.raises(asyncio.CancelledError):
        await sending

    _, payload_hash = setup.manager.sent[0]
    assert len(setup.node.pool) == 0
    assert ("delete", payload_hash) in setup.manager.events
