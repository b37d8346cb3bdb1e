"""The private half of a block: run its private transactions on their groups' states.

``PrivateBlocks`` is what the node asks for a block's private half (the node's
``PrivateBlockSource``): it fetches the block's payloads from the manager
(``payloads.PayloadResolver``) on the event loop and returns a ``ResolvedPrivateBlock``
(the chain's ``PrivateBlock``). ``ChainService`` executes that inside the block's single
atomic write, after the public half and on the chain thread: for each private
transaction this node is party to, in block order, the payload runs on the private state
of its party group; then each touched group's new root, the private receipts and the new
private contracts are stored.

A transaction that touches a private contract of its group without that contract's
privacy flag (or, for flag 2, without all its mandatory recipients) fails: status 0,
its changes undone (``privacy.flags``). The flag and mandatory recipients judged are
the ones authenticated in the manager's envelope, the same for every party, so every
party refuses it alike and no group state diverges.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from eth.abc import (
    AtomicDatabaseAPI,
    BlockAPI,
    ChainAPI,
    ComputationAPI,
    SignedTransactionAPI,
    StateAPI,
)
from eth.constants import BLANK_ROOT_HASH
from eth_bloom import BloomFilter
from eth_typing import Address, Hash32

from quorum_node.chain.records import LogEntry, TransactionRecord
from quorum_node.chain.transactions import (
    QuorumTransactionBuilder,
    is_private,
    private_payload_hashes,
)
from quorum_node.privacy.flags import flag_refusal
from quorum_node.privacy.payloads import PayloadResolver, PrivatePayload
from quorum_node.privacy.state import (
    Refuse,
    private_state,
    record_history,
    run_private_transaction,
)
from quorum_node.privacy.store import PrivateContract, PrivateStore

logger = logging.getLogger(__name__)


class PrivateBlocks:
    """The node's source of private block halves (``node.PrivateBlockSource``)."""

    def __init__(self, resolver: PayloadResolver, processor: PrivacyProcessor) -> None:
        self._resolver = resolver
        self._processor = processor

    async def for_block(
        self, transactions: Sequence[SignedTransactionAPI], *, patient: bool
    ) -> ResolvedPrivateBlock:
        hashes = private_payload_hashes(transactions)
        payloads = await self._resolver.resolve(hashes, patient=patient) if hashes else {}
        return ResolvedPrivateBlock(self._processor, payloads)

    async def close(self) -> None:
        """Nothing to close: the manager's client belongs to the node's wiring."""


@dataclass(frozen=True)
class ResolvedPrivateBlock:
    """A block's private half with its payloads in hand (``chain.service.PrivateBlock``)."""

    processor: PrivacyProcessor
    payloads: Mapping[bytes, PrivatePayload | None]

    def execute(
        self, chain: ChainAPI, block: BlockAPI, public_records: tuple[TransactionRecord, ...]
    ) -> None:
        self.processor.process_block(chain, block, public_records, self.payloads)


class PrivacyProcessor:
    def __init__(self, db: AtomicDatabaseAPI, store: PrivateStore) -> None:
        self.db = db
        self.store = store

    def process_block(
        self,
        chain: ChainAPI,
        block: BlockAPI,
        public_records: tuple[TransactionRecord, ...],
        payloads: Mapping[bytes, PrivatePayload | None],
    ) -> None:
        roots = self.store.roots_after(block.header.parent_hash)
        private_txs = [
            (tx, record)
            for tx, record in zip(block.transactions, public_records, strict=True)
            if is_private(tx)
        ]
        if not private_txs:
            self.store.set_roots_after(block.hash, roots)
            return
        public_vm = chain.get_vm(block.header)
        states: dict[bytes, StateAPI] = {}
        created_in: dict[bytes, list[Address]] = {}
        executed: dict[bytes, list[tuple[Hash32, bytes]]] = {}
        bloom = BloomFilter()
        next_log_index = sum(len(record.logs) for record in public_records)
        for transaction, public_record in private_txs:
            found = payloads.get(bytes(transaction.data))
            if found is None:
                continue  # not a party: the public nonce bump was all there was to do
            state = states.get(found.group_id)
            if state is None:
                root = roots.get(found.group_id, Hash32(BLANK_ROOT_HASH))
                state = private_state(public_vm, self.db, root)
                states[found.group_id] = state
                self.store.set_group_members(found.group_id, list(found.parties))
            executed.setdefault(found.group_id, []).append(
                (public_record.transaction_hash, bytes(transaction.data))
            )
            outcome = run_private_transaction(
                state,
                transaction,
                public_record.sender,
                found.payload,
                QuorumTransactionBuilder,
                refuse=self._flag_check(found),
            )
            record_history(state, public_record.transaction_hash, bytes(transaction.data))
            if outcome.refusal is not None:
                logger.warning(
                    "private transaction %s failed its privacy flag check: %s",
                    public_record.transaction_hash.hex(),
                    outcome.refusal,
                )
            logs: tuple[LogEntry, ...] = ()
            if outcome.computation is not None and outcome.status == 1:
                logs = tuple(
                    LogEntry(Address(address), tuple(t.to_bytes(32, "big") for t in topics), data)
                    for address, topics, data in outcome.computation.get_log_entries()
                )
            log_bloom = BloomFilter()
            for log in logs:
                log_bloom.add(log.address)
                for topic in log.topics:
                    log_bloom.add(topic)
            bloom |= log_bloom
            self.store.set_record(
                replace(
                    public_record,
                    status=outcome.status,
                    gas_used=outcome.gas_used,
                    first_log_index=next_log_index,
                    logs=logs,
                    logs_bloom=int(log_bloom).to_bytes(256, "big"),
                )
            )
            next_log_index += len(logs)
            if outcome.computation is not None and outcome.status == 1:
                contract = PrivateContract(
                    found.group_id,
                    public_record.transaction_hash,
                    found.privacy_flag,
                    found.mandatory_for,
                )
                for created in created_contracts(outcome.computation):
                    self.store.set_contract(created, contract)
                    created_in.setdefault(found.group_id, []).append(created)
        self.store.set_block_groups(block.hash, executed)
        for group_id, addresses in created_in.items():
            self.store.add_group_contracts(group_id, addresses)
        for group_id, state in states.items():
            state.persist()
            roots[group_id] = Hash32(state.state_root)
        self.store.set_roots_after(block.hash, roots)
        self.store.set_private_bloom(block.hash, int(bloom))

    def _flag_check(self, found: PrivatePayload) -> Refuse:
        """GoQuorum's execution-time check (``core/state_transition_pmh.go``), on the
        contracts this node recorded."""
        return flag_refusal(
            self.store.contract, found.group_id, found.privacy_flag, found.mandatory_for
        )


def created_contracts(computation: ComputationAPI) -> list[Address]:
    """Every contract a successful computation created, itself and its sub-calls
    included (CREATE and CREATE2 inside a private contract stay in its group)."""
    created = []
    if computation.msg.is_create and not computation.is_error:
        created.append(Address(computation.msg.storage_address))
    for child in computation.children:
        if not child.is_error:
            created.extend(created_contracts(child))
    return created
