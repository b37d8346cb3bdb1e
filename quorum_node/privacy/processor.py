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
from quorum_node.privacy.group_change import GROUP_CHANGE_ADDRESS
from quorum_node.privacy.group_changes import GroupChanges
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
        if not hashes:
            return ResolvedPrivateBlock(self._processor, {})
        payloads = await self._resolver.resolve(hashes, patient=patient)
        own_keys = await self._resolver.own_keys() if any(payloads.values()) else frozenset()
        return ResolvedPrivateBlock(self._processor, payloads, own_keys)

    async def close(self) -> None:
        """Nothing to close: the manager's client belongs to the node's wiring."""


@dataclass(frozen=True)
class ResolvedPrivateBlock:
    """A block's private half with its payloads in hand (``chain.service.PrivateBlock``)."""

    processor: PrivacyProcessor
    payloads: Mapping[bytes, PrivatePayload | None]
    own_keys: frozenset[str] = frozenset()  # the manager's keys, when a payload was found

    def execute(
        self, chain: ChainAPI, block: BlockAPI, public_records: tuple[TransactionRecord, ...]
    ) -> None:
        self.processor.process_block(chain, block, public_records, self.payloads, self.own_keys)


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
        own_keys: frozenset[str] = frozenset(),
    ) -> None:
        roots = self.roots_entering(block.header.parent_hash)
        private_txs = [
            (tx, record)
            for tx, record in zip(block.transactions, public_records, strict=True)
            if is_private(tx)
        ]
        if not private_txs:
            self.store.set_roots_after(block.hash, roots)
            return
        changes = GroupChanges(self.store, own_keys)
        pending = self.store.pending_groups()
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
            if found.group_id in pending:
                continue  # joined, state not handed over yet: run later (``catch_up``)
            if transaction.to == GROUP_CHANGE_ADDRESS or changes.frozen(found.group_id, block):
                status = changes.apply(found, public_record, block, transaction.to)
                self.store.set_record(
                    replace(public_record, status=status, first_log_index=next_log_index)
                )
                continue
            state = states.get(found.group_id)
            if state is None:
                root = roots.get(found.group_id, Hash32(BLANK_ROOT_HASH))
                state = private_state(public_vm, self.db, root)
                states[found.group_id] = state
                self.store.set_group_members(found.group_id, list(found.parties))
            executed.setdefault(found.group_id, []).append(
                (public_record.transaction_hash, bytes(transaction.data))
            )
            record, created = self._execute(
                state, transaction, public_record, found, next_log_index
            )
            bloom |= BloomFilter(int.from_bytes(record.logs_bloom, "big"))
            next_log_index += len(record.logs)
            created_in.setdefault(found.group_id, []).extend(created)
        self.store.set_block_groups(block.hash, executed)
        for group_id, addresses in created_in.items():
            self.store.add_group_contracts(group_id, addresses)
        for group_id, state in states.items():
            state.persist()
            roots[group_id] = Hash32(state.state_root)
        changes.activate(block, roots)
        self.store.set_roots_after(block.hash, roots)
        self.store.set_private_bloom(block.hash, int(bloom))

    def roots_entering(self, parent_hash: bytes) -> dict[bytes, Hash32]:
        """The group roots a block starts from: its parent's, with each group frozen in
        the parent moved to its successor (or dropped where this node left it)."""
        roots = self.store.roots_after(parent_hash)
        for old, new in self.store.successions(parent_hash):
            root = roots.pop(old, None)
            if new is not None and root is not None:
                roots[new] = root
        return roots

    def _execute(
        self,
        state: StateAPI,
        transaction: SignedTransactionAPI,
        public_record: TransactionRecord,
        found: PrivatePayload,
        first_log_index: int,
    ) -> tuple[TransactionRecord, list[Address]]:
        """Run one private transaction on its group's state and store its private record
        and the contracts it created; the record and those contracts."""
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
        record = replace(
            public_record,
            status=outcome.status,
            gas_used=outcome.gas_used,
            first_log_index=first_log_index,
            logs=logs,
            logs_bloom=int(log_bloom).to_bytes(256, "big"),
        )
        self.store.set_record(record)
        created: list[Address] = []
        if outcome.computation is not None and outcome.status == 1:
            contract = PrivateContract(
                found.group_id,
                public_record.transaction_hash,
                found.privacy_flag,
                found.mandatory_for,
            )
            created = created_contracts(outcome.computation)
            for address in created:
                self.store.set_contract(address, contract)
        return record, created

    def catch_up(
        self,
        chain: ChainAPI,
        group_id: bytes,
        root: bytes,
        blocks: Sequence[tuple[BlockAPI, Sequence[TransactionRecord]]],
        payloads: Mapping[bytes, PrivatePayload | None],
    ) -> bytes:
        """Run a group's transactions of ``blocks`` (in order, from ``root``) that this
        node skipped while it waited for the group's handed-over state, and give every
        one of those blocks the group's root; the root after the last. One atomic write
        is the caller's."""
        for block, public_records in blocks:
            roots = self.store.roots_after(block.hash)
            mine = [
                (transaction, record, found)
                for transaction, record in zip(block.transactions, public_records, strict=True)
                if is_private(transaction)
                and transaction.to != GROUP_CHANGE_ADDRESS
                and (found := payloads.get(bytes(transaction.data))) is not None
                and found.group_id == group_id
            ]
            if mine:
                state = private_state(chain.get_vm(block.header), self.db, Hash32(root))
                executed = self.store.block_groups(block.hash)
                bloom = BloomFilter(self.store.private_bloom(block.hash))
                next_log_index = sum(len(record.logs) for record in public_records)
                for transaction, public_record, found in mine:
                    executed.setdefault(group_id, []).append(
                        (public_record.transaction_hash, bytes(transaction.data))
                    )
                    record, created = self._execute(
                        state, transaction, public_record, found, next_log_index
                    )
                    bloom |= BloomFilter(int.from_bytes(record.logs_bloom, "big"))
                    next_log_index += len(record.logs)
                    self.store.add_group_contracts(group_id, created)
                state.persist()
                root = bytes(state.state_root)
                self.store.set_block_groups(block.hash, executed)
                self.store.set_private_bloom(block.hash, int(bloom))
            roots[group_id] = Hash32(root)
            self.store.set_roots_after(block.hash, roots)
        return root

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
