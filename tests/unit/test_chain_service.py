"""``ChainService`` with a fake private half: it runs once per block, inside the block's
single atomic write (held aside with the rest by ``prepare_block``), and a fake private
view decides which record and private bloom readers see."""

from __future__ import annotations

from dataclasses import replace

import pytest
from eth.abc import BlockAPI, ChainAPI, SignedTransactionAPI
from eth.db.schema import SchemaV1

from quorum_node.chain.records import TransactionRecord, record_key
from quorum_node.chain.service import ChainService
from quorum_node.errors import ChainError
from tests.support.inproc import (
    COINBASE,
    KEYS,
    MemoryOverlayDB,
    genesis,
    private_transaction,
    transfer,
)

pytestmark = pytest.mark.timeout(20)

MARK = b"unit-test:private-half-ran:"
HEAD_KEY = SchemaV1.make_canonical_head_hash_lookup_key()


class RecordingPrivateHalf:
    """A ``PrivateBlock`` that writes ``MARK + block hash`` through ``db`` and remembers
    what it was given and whether its write was already durable when it made it."""

    def __init__(self, db: MemoryOverlayDB, *, fail: bool = False) -> None:
        self._db = db
        self._fail = fail
        self.calls: list[tuple[ChainAPI, BlockAPI, tuple[TransactionRecord, ...]]] = []
        self.durable_during_execute: list[bool] = []

    def execute(
        self, chain: ChainAPI, block: BlockAPI, public_records: tuple[TransactionRecord, ...]
    ) -> None:
        self.calls.append((chain, block, public_records))
        self._db[MARK + block.hash] = b"ran"
        self.durable_during_execute.append(MARK + block.hash in self._db.committed)
        if self._fail:
            raise RuntimeError("the private half failed")


def seal(
    service: ChainService,
    transactions: list[SignedTransactionAPI],
    private: RecordingPrivateHalf | None = None,
) -> BlockAPI:
    return service.seal_block(
        transactions, timestamp=1_700_000_000, coinbase=COINBASE, private=private
    ).block


def test_seal_block_runs_the_private_half_once_inside_the_blocks_single_write() -> None:
    db = MemoryOverlayDB()
    service = ChainService(db, genesis())
    private = RecordingPrivateHalf(db)
    transactions = [transfer(KEYS[0], 0), transfer(KEYS[1], 0)]
    commits_before = len(db.commits)

    committed = service.seal_block(
        transactions, timestamp=1_700_000_000, coinbase=COINBASE, private=private
    )

    assert len(private.calls) == 1
    chain, block, public_records = private.calls[0]
    assert chain is service.chain
    assert block.hash == committed.block.hash
    assert public_records == committed.records
    assert [record.transaction_hash for record in public_records] == [
        tx.hash for tx in transactions
    ]
    assert private.durable_during_execute == [False]
    assert len(db.commits) == commits_before + 1
    the_write = db.commits[-1]
    assert the_write[MARK + block.hash] == b"ran"
    assert HEAD_KEY in the_write
    assert all(record_key(tx.hash) in the_write for tx in transactions)


def test_prepare_block_holds_the_private_write_aside_until_commit_prepared() -> None:
    db = MemoryOverlayDB()
    service = ChainService(db, genesis())
    private = RecordingPrivateHalf(db)
    commits_before = len(db.commits)

    prepared = service.prepare_block(
        [transfer(KEYS[0], 0)], timestamp=1_700_000_000, coinbase=COINBASE, private=private
    )

    key = MARK + prepared.block.hash
    assert len(private.calls) == 1
    assert private.calls[0][1].hash == prepared.block.hash
    assert prepared.writes[key] == b"ran"
    assert not db.exists(key)
    assert len(db.commits) == commits_before
    assert service.head.block_number == 0

    committed = service.commit_prepared(prepared)

    assert len(private.calls) == 1
    assert db[key] == b"ran"
    assert len(db.commits) == commits_before + 1
    assert key in db.commits[-1] and HEAD_KEY in db.commits[-1]
    assert service.head.hash == committed.block.hash == prepared.block.hash


def test_import_block_runs_the_private_half_once_inside_the_imports_single_write() -> None:
    builder = ChainService(MemoryOverlayDB(), genesis())
    built = builder.seal_block(
        [transfer(KEYS[0], 0), transfer(KEYS[0], 1)], timestamp=1_700_000_000, coinbase=COINBASE
    )
    db = MemoryOverlayDB()
    follower = ChainService(db, genesis())
    private = RecordingPrivateHalf(db)
    commits_before = len(db.commits)

    imported = follower.import_block(built.block, private)

    assert len(private.calls) == 1
    chain, block, public_records = private.calls[0]
    assert chain is follower.chain
    assert block.hash == built.block.hash == imported.block.hash
    assert public_records == built.records
    assert private.durable_during_execute == [False]
    assert len(db.commits) == commits_before + 1
    assert MARK + block.hash in db.commits[-1] and HEAD_KEY in db.commits[-1]


def test_a_failing_private_half_commits_nothing_of_the_block() -> None:
    db = MemoryOverlayDB()
    service = ChainService(db, genesis())
    transaction = transfer(KEYS[0], 0)
    failing = RecordingPrivateHalf(db, fail=True)
    commits_before = len(db.commits)

    with pytest.raises(RuntimeError, match="the private half failed"):
        seal(service, [transaction], failing)

    block = failing.calls[0][1]
    assert len(db.commits) == commits_before
    assert not db.exists(MARK + block.hash)
    assert service.head.block_number == 0
    assert service.record(transaction.hash) is None

    working = RecordingPrivateHalf(db)
    sealed = seal(service, [transaction], working)

    assert sealed.number == 1
    assert service.head.hash == sealed.hash
    record = service.record(transaction.hash)
    assert record is not None and record.status == 1
    assert db[MARK + sealed.hash] == b"ran"


def test_a_failing_private_half_on_import_leaves_the_head_for_a_retry() -> None:
    builder = ChainService(MemoryOverlayDB(), genesis())
    built = builder.seal_block([transfer(KEYS[0], 0)], timestamp=1, coinbase=COINBASE)
    db = MemoryOverlayDB()
    follower = ChainService(db, genesis())

    with pytest.raises(RuntimeError):
        follower.import_block(built.block, RecordingPrivateHalf(db, fail=True))

    assert follower.head.block_number == 0
    assert not db.exists(MARK + built.block.hash)
    follower.import_block(built.block, RecordingPrivateHalf(db))
    assert follower.head.hash == built.block.hash
    assert follower.head.state_root == builder.head.state_root


def test_import_refuses_a_block_that_does_not_extend_the_head_before_running_anything() -> None:
    builder = ChainService(MemoryOverlayDB(), genesis())
    seal(builder, [transfer(KEYS[0], 0)])
    second = seal(builder, [])
    db = MemoryOverlayDB()
    follower = ChainService(db, genesis())
    private = RecordingPrivateHalf(db)

    with pytest.raises(ChainError, match="block #2 does not extend the head #0"):
        follower.import_block(second, private)

    assert private.calls == []


@pytest.mark.parametrize(
    "field, value",
    [("state_root", b"\x01" * 32), ("gas_used", 21_001), ("blob_gas_used", 131_072)],
)
def test_import_refuses_a_block_whose_header_differs_from_its_execution(
    field: str, value: object
) -> None:
    builder = ChainService(MemoryOverlayDB(), genesis())
    built = seal(builder, [transfer(KEYS[0], 0)])
    forged = built.copy(header=built.header.copy(**{field: value}))
    db = MemoryOverlayDB()
    follower = ChainService(db, genesis())
    commits_before = len(db.commits)

    with pytest.raises(ChainError, match="block #1 is invalid"):
        follower.import_block(forged)

    assert follower.head.block_number == 0
    assert len(db.commits) == commits_before
    assert follower.import_block(built).block.hash == built.hash


def test_blob_gas_is_still_counted_for_a_transaction_that_carries_blobs() -> None:
    service = ChainService(MemoryOverlayDB(), genesis())
    vm = service.vm_at(service.head)
    header = vm.get_header()

    class WithBlobs:
        blob_versioned_hashes = (b"\x01" * 32, b"\x02" * 32)

    assert vm.increment_blob_gas_used(header, transfer(KEYS[0], 0)) is header
    assert (
        vm.increment_blob_gas_used(header, WithBlobs()).blob_gas_used
        == header.blob_gas_used + 2 * 131_072
    )


class FakePrivateView:
    """A ``PrivateView`` filled by ``OverridingPrivateHalf`` as the real store is filled
    by the privacy processor."""

    def __init__(self) -> None:
        self.records: dict[bytes, TransactionRecord] = {}
        self.blooms: dict[bytes, int] = {}

    def record(self, transaction_hash: bytes) -> TransactionRecord | None:
        return self.records.get(transaction_hash)

    def private_bloom(self, block_hash: bytes) -> int:
        return self.blooms.get(block_hash, 0)


class OverridingPrivateHalf:
    """Writes a private record (status 0, other gas) for the transactions it is party to."""

    def __init__(self, view: FakePrivateView, party_to: set[bytes], bloom: int) -> None:
        self._view = view
        self._party_to = party_to
        self._bloom = bloom

    def execute(
        self, chain: ChainAPI, block: BlockAPI, public_records: tuple[TransactionRecord, ...]
    ) -> None:
        for record in public_records:
            if record.transaction_hash in self._party_to:
                self._view.records[record.transaction_hash] = replace(
                    record, status=0, gas_used=12_345
                )
        self._view.blooms[block.hash] = self._bloom


def test_the_private_view_overrides_records_and_the_private_bloom() -> None:
    view = FakePrivateView()
    service = ChainService(MemoryOverlayDB(), genesis(), private_view=view)
    private_one = private_transaction(KEYS[0], 0, b"\x11" * 64)
    public_one = transfer(KEYS[1], 0)
    half = OverridingPrivateHalf(view, {private_one.hash, public_one.hash}, bloom=0xB100)

    committed = service.seal_block(
        [private_one, public_one], timestamp=1, coinbase=COINBASE, private=half
    )

    seen = service.record(private_one.hash)
    assert seen is not None and (seen.status, seen.gas_used) == (0, 12_345)
    # Only a private transaction can have a private record: the block's records ask the
    # view for it alone (the view answers for the public one too, and is not asked).
    assert [r.status for r in committed.records] == [0, 1]
    assert [r.status for r in service.records_of(committed.block)] == [0, 1]
    assert service.private_bloom(committed.block.header) == 0xB100
    genesis_header = service.header_by_number(0)
    assert genesis_header is not None and service.private_bloom(genesis_header) == 0


def test_without_a_private_view_records_are_the_public_ones_and_the_bloom_is_empty() -> None:
    service = ChainService(MemoryOverlayDB(), genesis())
    transaction = transfer(KEYS[0], 0)

    committed = service.seal_block([transaction], timestamp=1, coinbase=COINBASE)

    assert service.record(transaction.hash) == committed.records[0]
    assert service.record(b"\x00" * 32) is None
    assert service.private_bloom(committed.block.header) == 0
