"""The chain as the node sees it: build a block, import a block, read what was committed.

This is the main flow of the node, top to bottom:

1. ``seal_block`` (the block producer) takes candidate transactions from the pool,
   executes them in one batch on a VM for the next block (``builder.build_block``),
   runs the block's private half (``PrivateBlock``, given by the caller with its
   payloads already fetched), and commits the block, its state, one
   ``TransactionRecord`` per transaction and the private results in a single atomic
   write.
2. ``import_block`` (a follower) re-executes a block received from consensus with the
   same VM and commits it the same way, refusing it if the result differs.
3. Everything else reads committed data: headers, blocks, records, state at a block.

The chain knows nothing of transaction managers or party groups: it sees the private
half of the ledger only through the two Protocols below, which ``quorum_node.privacy``
implements (docs/architecture.md, "Layers").

Every method runs on the chain thread (see ``executor.ChainExecutor``): py-evm objects
are not safe to share between threads, and one writer keeps the database simple.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Protocol, cast

from eth._utils.rlp import validate_imported_block_unchanged
from eth.abc import (
    AtomicDatabaseAPI,
    BlockAPI,
    BlockHeaderAPI,
    ChainAPI,
    ReceiptAPI,
    SignedTransactionAPI,
    StateAPI,
    VirtualMachineAPI,
)
from eth.chains.base import Chain
from eth.db.atomic import AtomicDB
from eth.exceptions import BlockNotFound, HeaderNotFound
from eth_typing import Address, BlockNumber, Hash32
from eth_utils import ValidationError, encode_hex

from quorum_node.chain.blocks import encode_block
from quorum_node.chain.builder import BuiltBlock, build_block, make_records
from quorum_node.chain.genesis import Genesis
from quorum_node.chain.records import TransactionRecord, record_key
from quorum_node.chain.transactions import is_private
from quorum_node.chain.vm import QuorumVM
from quorum_node.errors import ChainError, ConfigError

logger = logging.getLogger(__name__)

_GENESIS_HASH_KEY = b"quorum-py:genesis-hash"


def make_chain_class(chain_id: int) -> type[Chain]:
    return Chain.configure(  # type: ignore[no-any-return]
        __name__="QuorumChain", vm_configuration=((0, QuorumVM),), chain_id=chain_id
    )


class PrivateView(Protocol):
    """What this node holds of the private side of committed blocks, for reads."""

    def record(self, transaction_hash: bytes) -> TransactionRecord | None:
        """The private outcome of a transaction this node is party to, else None."""
        ...

    def private_bloom(self, block_hash: bytes) -> int:
        """The bloom of the private logs this node saw in a block (0 if none)."""
        ...


class PrivateBlock(Protocol):
    """The private half of one block, its payloads already in hand (chain thread)."""

    def execute(
        self, chain: ChainAPI, block: BlockAPI, public_records: tuple[TransactionRecord, ...]
    ) -> None:
        """Run the block's private transactions after its public ones and write every
        private result; called inside the block's single atomic write."""
        ...


class _NoPrivateView:
    def record(self, transaction_hash: bytes) -> TransactionRecord | None:
        return None

    def private_bloom(self, block_hash: bytes) -> int:
        return 0


@dataclass(frozen=True)
class CommittedBlock:
    """A block that is now the head, with what each of its transactions did."""

    block: BlockAPI
    records: tuple[TransactionRecord, ...]
    rejected: tuple[tuple[SignedTransactionAPI, str], ...] = ()
    deferred: tuple[SignedTransactionAPI, ...] = ()


@dataclass(frozen=True)
class PreparedBlock:
    """A block built on the head whose database writes are not committed yet, with its
    wire encoding (made on the chain thread, for the peers it is pushed to)."""

    built: BuiltBlock
    writes: dict[bytes, bytes | None]
    encoded: bytes

    @property
    def block(self) -> BlockAPI:
        return self.built.block


class ChainService:
    """One chain over one database; see the module docstring for the flow."""

    def __init__(
        self, db: AtomicDatabaseAPI, genesis: Genesis, private_view: PrivateView | None = None
    ) -> None:
        self.db = db
        self.private_view: PrivateView = private_view or _NoPrivateView()
        self.genesis = genesis
        self.chain_id = genesis.chain_id
        chain_class = make_chain_class(genesis.chain_id)
        stored_genesis_hash = db.get(_GENESIS_HASH_KEY) if db.exists(_GENESIS_HASH_KEY) else None
        expected_genesis_hash = (
            chain_class.from_genesis(AtomicDB(), genesis.header_params(), genesis.state())
            .get_canonical_head()
            .hash
        )
        if stored_genesis_hash is None:
            with self.one_write():
                self.chain: ChainAPI = chain_class.from_genesis(
                    db, genesis.header_params(), genesis.state()
                )
                db.set(
                    _GENESIS_HASH_KEY,
                    self.chain.get_canonical_block_header_by_number(BlockNumber(0)).hash,
                )
        else:
            self.chain = chain_class(db)
            genesis_hash = self.chain.get_canonical_block_header_by_number(BlockNumber(0)).hash
            if genesis_hash != expected_genesis_hash:
                raise ConfigError(
                    f"the database holds a chain whose genesis is {encode_hex(genesis_hash)}, "
                    f"but the genesis file gives {encode_hex(expected_genesis_hash)}"
                )
        self.genesis_hash: Hash32 = self.chain.get_canonical_block_header_by_number(
            BlockNumber(0)
        ).hash
        self.head: BlockHeaderAPI = self.chain.get_canonical_head()
        self._head_state: StateAPI | None = None
        logger.info(
            "chain %d at block %d (%s)",
            self.chain_id,
            self.head.block_number,
            encode_hex(self.head.hash),
        )

    # --- writes -------------------------------------------------------------------

    def one_write(self) -> AbstractContextManager[Any]:
        """Group every database write of a block into one atomic, durable commit."""
        batch_scope: Callable[[], AbstractContextManager[Any]] | None = getattr(
            self.db, "batch_scope", None
        )
        return batch_scope() if batch_scope is not None else nullcontext()

    def seal_block(
        self,
        candidates: Sequence[SignedTransactionAPI],
        *,
        timestamp: int,
        coinbase: bytes,
        extra_data: bytes = b"",
        private: PrivateBlock | None = None,
    ) -> CommittedBlock:
        """Build the next block from ``candidates`` on the head and commit it."""
        with self.one_write():
            built = self._build(candidates, timestamp, coinbase, extra_data, private)
        return self._advance(built.block, built.records, built.rejected, built.deferred)

    def prepare_block(
        self,
        candidates: Sequence[SignedTransactionAPI],
        *,
        timestamp: int,
        coinbase: bytes,
        extra_data: bytes = b"",
        private: PrivateBlock | None = None,
    ) -> PreparedBlock:
        """Build the next block but keep its writes aside until consensus accepts it."""
        capture = getattr(self.db, "capture_scope", None)
        if capture is None:
            raise ChainError("this database cannot hold a block's writes aside")
        with capture() as writes:
            built = self._build(candidates, timestamp, coinbase, extra_data, private)
        return PreparedBlock(built, dict(writes), encode_block(built.block))

    def _build(
        self,
        candidates: Sequence[SignedTransactionAPI],
        timestamp: int,
        coinbase: bytes,
        extra_data: bytes,
        private: PrivateBlock | None,
    ) -> BuiltBlock:
        """Execute the next block on the head and write all of it (inside a scope)."""
        built = build_block(
            self.chain,
            self.head,
            candidates,
            timestamp=max(timestamp, self.head.timestamp),
            coinbase=coinbase,
            extra_data=extra_data,
        )
        self._persist(built.block, built.records, private)
        return built

    def commit_prepared(self, prepared: PreparedBlock) -> CommittedBlock:
        """Commit a prepared block; it must still extend the head."""
        block = prepared.built.block
        if block.header.parent_hash != self.head.hash:
            raise ChainError(f"prepared block #{block.number} no longer extends the head")
        self.db.commit_captured(prepared.writes)  # type: ignore[attr-defined]
        built = prepared.built
        return self._advance(block, built.records, built.rejected, built.deferred)

    def import_block(self, block: BlockAPI, private: PrivateBlock | None = None) -> CommittedBlock:
        """Execute a block that another node built and commit it if it checks out."""
        if block.header.parent_hash != self.head.hash:
            raise ChainError(
                f"block #{block.number} does not extend the head #{self.head.block_number}"
            )
        with self.one_write():
            try:
                imported, receipts = self._execute_import(block)
            except ValidationError as exc:
                raise ChainError(f"block #{block.number} is invalid: {exc}") from exc
            # Executing the block validated each transaction and kept its sender on the
            # object; the finalised block holds copies without it.
            senders = [Address(transaction.sender) for transaction in block.transactions]
            records = make_records(imported, receipts, senders)
            self._write_records(records)
            if private is not None:
                private.execute(self.chain, imported, records)
        return self._advance(imported, records)

    def _execute_import(self, block: BlockAPI) -> tuple[BlockAPI, tuple[ReceiptAPI, ...]]:
        """py-evm's ``Chain.import_block`` (execute on the parent's state, the result must
        equal the block, validate, persist) without what it reads back afterwards: every
        new canonical block decoded again from the database, and the receipts through
        their trie. Those reads were a fifth of a follower's import."""
        header = self.chain.create_header_from_parent(self.head).copy(
            gas_used=block.header.gas_used
        )
        vm = cast(QuorumVM, self.chain.get_vm(header))
        imported = vm.import_block(block).block
        validate_imported_block_unchanged(imported, block)
        vm.validate_block(imported)
        self.chain.chaindb.persist_block(imported)
        return imported, vm.receipts_of(imported)

    def _persist(
        self,
        block: BlockAPI,
        records: tuple[TransactionRecord, ...],
        private: PrivateBlock | None,
    ) -> None:
        """Every write of a built block: the block, its records, its private half."""
        self.chain.chaindb.persist_block(block)
        self._write_records(records)
        if private is not None:
            private.execute(self.chain, block, records)

    def _advance(
        self,
        block: BlockAPI,
        records: tuple[TransactionRecord, ...],
        rejected: tuple[tuple[SignedTransactionAPI, str], ...] = (),
        deferred: tuple[SignedTransactionAPI, ...] = (),
    ) -> CommittedBlock:
        self.head = block.header
        self._head_state = None
        # Filters and subscriptions see what this node sees: private results where it is
        # a party, the public side elsewhere (only a private transaction can have one).
        visible = tuple(
            (self.private_view.record(record.transaction_hash) or record)
            if is_private(transaction)
            else record
            for transaction, record in zip(block.transactions, records, strict=True)
        )
        return CommittedBlock(block, visible, rejected, deferred)

    def _write_records(self, records: Sequence[TransactionRecord]) -> None:
        for record in records:
            self.db.set(record_key(record.transaction_hash), record.to_bytes())

    # --- reads --------------------------------------------------------------------

    def header_by_number(self, number: int) -> BlockHeaderAPI | None:
        if number < 0 or number > self.head.block_number:
            return None
        try:
            return self.chain.get_canonical_block_header_by_number(BlockNumber(number))
        except HeaderNotFound:
            return None

    def header_by_hash(self, block_hash: bytes) -> BlockHeaderAPI | None:
        try:
            header = self.chain.get_block_header_by_hash(Hash32(block_hash))
        except HeaderNotFound:
            return None
        return header if header.block_number <= self.head.block_number else None

    def block_of(self, header: BlockHeaderAPI) -> BlockAPI:
        try:
            return self.chain.get_block_by_header(header)
        except BlockNotFound as exc:
            raise ChainError(f"block body of #{header.block_number} is missing") from exc

    def record(self, transaction_hash: bytes) -> TransactionRecord | None:
        """The private record where this node is a party, else the public one."""
        private = self.private_view.record(transaction_hash)
        if private is not None:
            return private
        return self._public_record(transaction_hash)

    def _public_record(self, transaction_hash: bytes) -> TransactionRecord | None:
        key = record_key(transaction_hash)
        try:
            encoded = self.db[key]
        except KeyError:
            return None
        return TransactionRecord.from_bytes(encoded)

    def records_of(self, block: BlockAPI) -> list[TransactionRecord]:
        """The block's records as this node sees them (see ``record``); only a private
        transaction can have a private record, so only those are looked up there."""
        records = []
        for transaction in block.transactions:
            if is_private(transaction):
                record = self.record(transaction.hash)
            else:
                record = self._public_record(transaction.hash)
            if record is None:
                raise ChainError(f"record of {encode_hex(transaction.hash)} is missing")
            records.append(record)
        return records

    def head_state(self) -> StateAPI:
        """The head's state, kept between calls until the head moves (read-only use)."""
        if self._head_state is None:
            self._head_state = self.state_at(self.head)
        return self._head_state

    def state_at(self, header: BlockHeaderAPI) -> StateAPI:
        """A throw-away py-evm state as it was after ``header``'s block."""
        return self.chain.get_vm(header).state

    def vm_at(self, header: BlockHeaderAPI) -> VirtualMachineAPI:
        """A throw-away VM over the state after ``header``, in that block's context.

        geth runs ``eth_call`` the same way: block number, timestamp and coinbase are the
        given block's, and the state is the one its execution left.
        """
        return self.chain.get_vm(header)

    def private_bloom(self, header: BlockHeaderAPI) -> int:
        return self.private_view.private_bloom(header.hash)
