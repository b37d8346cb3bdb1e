"""The private half of a block: run its private transactions on their groups' states.

Called by ``ChainService`` inside the block's single atomic write, after the public half
executed and on the chain thread, with the payloads already fetched from the manager
(``payloads.PayloadResolver``). For each private transaction this node is party to, in
block order, the payload runs on the private state of its party group; then each touched
group's new root, the private receipts and the new private contracts are stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from eth.abc import AtomicDatabaseAPI, BlockAPI, ChainAPI, ComputationAPI, StateAPI
from eth.constants import BLANK_ROOT_HASH
from eth_bloom import BloomFilter
from eth_typing import Address, Hash32

from quorum_node.chain.records import LogEntry, TransactionRecord
from quorum_node.chain.transactions import QuorumTransactionBuilder, is_private
from quorum_node.privacy.payloads import PrivatePayload
from quorum_node.privacy.state import private_state, run_private_transaction
from quorum_node.privacy.store import PrivateContract, PrivateStore


class PrivacyProcessor:
    def __init__(self, db: AtomicDatabaseAPI) -> None:
        self.db = db
        self.store = PrivateStore(db)

    def payload_hashes(self, block: BlockAPI) -> list[bytes]:
        return [bytes(tx.data) for tx in block.transactions if is_private(tx)]

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
            outcome = run_private_transaction(
                state, transaction, public_record.sender, found.payload, QuorumTransactionBuilder
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
                    found.group_id, public_record.transaction_hash, found.privacy_flag
                )
                for created in created_contracts(outcome.computation):
                    self.store.set_contract(created, contract)
        for group_id, state in states.items():
            state.persist()
            roots[group_id] = Hash32(state.state_root)
        self.store.set_roots_after(block.hash, roots)
        self.store.set_private_bloom(block.hash, int(bloom))


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
