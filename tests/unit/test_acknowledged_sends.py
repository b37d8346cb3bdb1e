"""What a node acknowledges, in process: a send waits until the node is current or is
refused with "node is catching up"; every local send is journaled before its answer, a
refused one is not kept, a mined one is forgotten; after a restart (a new ``Node`` on
the same database) the journal is sent again, except what was mined or lost its nonce.

The engine is a stand-in whose committed head the test sets, so each case is exact.
"""

from __future__ import annotations

import asyncio

import pytest
from eth.abc import SignedTransactionAPI

from quorum_node.accounts import AccountStore
from quorum_node.chain.service import ChainService
from quorum_node.errors import NodeCatchingUp, TransactionRejected
from quorum_node.local_transactions import LocalTransactions
from quorum_node.node import Node
from tests.support.inproc import COINBASE, KEYS, MemoryOverlayDB, genesis, new_node, transfer

pytestmark = pytest.mark.timeout(20)

ALICE, BOB = KEYS[0], KEYS[1]


class Engine:
    """The node's engine as far as sends care: what it says the committed head is."""

    def __init__(self, committed: int | None = 0) -> None:
        self.committed = committed
        self.added: list[SignedTransactionAPI] = []

    def committed_head(self) -> int | None:
        return self.committed

    def transaction_added(self, transaction: SignedTransactionAPI) -> None:
        self.added.append(transaction)

    async def stop(self) -> None:
        pass


class Restartable:
    """Nodes on one database, as a node process and its restart would be."""

    def __init__(self) -> None:
        self.db = MemoryOverlayDB()
        self.chain = ChainService(self.db, genesis())
        self.nodes: list[Node] = []
        self.replays: list[asyncio.Future[None]] = []

    def start(self, engine: Engine | None = None, *, replay: bool = True) -> Node:
        """A node on the database, replaying its journal as a started node does (unless
        the test drives the replay itself)."""
        chain = ChainService(self.db, genesis())  # reads the head back, as at a start
        node = Node(chain, AccountStore(), COINBASE, None, LocalTransactions(self.db))
        node.engine = engine or Engine()
        self.nodes.append(node)
        if replay:
            self.replays.append(asyncio.ensure_future(node.replay_local_transactions()))
        return node

    def journaled(self) -> set[bytes]:
        return {key[-32:] for key, _ in self.db.committed_items(b"quorum-py:local-transaction:")}

    async def close(self) -> None:
        for replay in self.replays:
            replay.cancel()
        for node in self.nodes:
            await node.close()


@pytest.fixture
async def disk() -> Restartable:
    made = Restartable()
    yield made  # type: ignore[misc]
    await made.close()


async def test_a_send_waits_for_the_committed_head_then_is_answered(disk: Restartable) -> None:
    engine = Engine(committed=1)  # the cluster committed block 1; this node has 0
    node = disk.start(engine)
    send = asyncio.ensure_future(node.submit(transfer(ALICE, 0)))
    await asyncio.sleep(0.2)
    assert not send.done()  # not answered on a stale head
    helper = new_node(ChainService(MemoryOverlayDB(), genesis()))
    await helper.submit(transfer(BOB, 0))
    block = (await helper.produce_block(allow_empty=False)).block  # type: ignore[union-attr]
    await node.import_block(block)  # the node reaches block 1
    assert await asyncio.wait_for(send, 2) == transfer(ALICE, 0).hash
    await helper.close()


@pytest.mark.parametrize(
    ("committed", "message"),
    [(None, "head 0 of an unknown head"), (3, "head 0 of 3")],
)
async def test_a_send_to_a_node_that_cannot_catch_up_is_refused(
    disk: Restartable, monkeypatch: pytest.MonkeyPatch, committed: int | None, message: str
) -> None:
    node = disk.start(Engine(committed))
    monkeypatch.setattr("quorum_node.node.CATCH_UP_SECONDS", 0.2)
    with pytest.raises(NodeCatchingUp, match=f"node is catching up: {message}"):
        await node.submit(transfer(ALICE, 0))
    assert not node.is_waiting(transfer(ALICE, 0).hash) and not disk.journaled()
    await node.submit(transfer(ALICE, 0), local=False)  # a peer's forward is not held
    assert node.is_waiting(transfer(ALICE, 0).hash)


async def test_a_local_send_is_journaled_before_it_is_answered(disk: Restartable) -> None:
    node = disk.start()
    transaction = transfer(ALICE, 0)
    await node.submit(transaction)
    assert disk.journaled() == {bytes(transaction.hash)}
    forwarded = transfer(BOB, 0)
    await node.submit(forwarded, local=False)
    assert disk.journaled() == {bytes(transaction.hash)}  # forwarded: its sender keeps it


async def test_concurrent_local_sends_are_journaled_in_one_commit(disk: Restartable) -> None:
    node = disk.start()
    before = len(disk.db.commits)
    await asyncio.gather(*(node.submit(transfer(ALICE, nonce)) for nonce in range(5)))
    assert len(disk.journaled()) == 5
    assert len(disk.db.commits) == before + 1


async def test_a_send_the_pool_refuses_is_not_kept(disk: Restartable) -> None:
    node = disk.start()
    await node.submit(transfer(ALICE, 0, value=1))
    refused = transfer(ALICE, 0, value=2)  # same nonce, same price: not a replacement
    with pytest.raises(TransactionRejected, match="underpriced"):
        await node.submit(refused)
    assert bytes(refused.hash) not in disk.journaled()


async def test_a_mined_send_is_forgotten(
    disk: Restartable, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("quorum_node.node.FORGET_DELAY_SECONDS", 0.01)
    node = disk.start()
    await node.submit(transfer(ALICE, 0))
    await node.produce_block(allow_empty=False)
    for _ in range(100):
        if not disk.journaled():
            break
        await asyncio.sleep(0.01)
    assert not disk.journaled()


async def test_after_a_restart_the_journal_is_sent_again_except_what_is_settled(
    disk: Restartable,
) -> None:
    first = disk.start()
    mined, waiting, taken = transfer(ALICE, 0), transfer(ALICE, 1), transfer(BOB, 0)
    for transaction in (mined, waiting, taken):
        await first.submit(transaction)
    # Mine only ALICE's nonce 0 and, for BOB, another transaction with nonce 0.
    first.pool.remove([waiting, taken])
    rival = transfer(BOB, 0, value=7)
    await first.submit(rival, local=False)
    await first.produce_block(allow_empty=False)
    assert disk.journaled() >= {bytes(mined.hash), bytes(waiting.hash), bytes(taken.hash)}

    engine = Engine(committed=None)  # restarted, and not caught up yet
    second = disk.start(engine, replay=False)
    replay = asyncio.ensure_future(second.replay_local_transactions())
    await asyncio.sleep(0.2)
    assert not second.is_waiting(waiting.hash)  # nothing is sent on a stale head
    engine.committed = second.head.block_number
    with pytest.raises(NodeCatchingUp):  # current now, but the journal is not back yet...
        await second.until_current(timeout=0)
    await asyncio.wait_for(replay, 10)
    await second.until_current()  # ...and then finds its nonce taken by what came back
    assert second.pool.pending_nonce(waiting.sender, 1) == 2
    assert second.is_waiting(waiting.hash)
    assert not second.is_waiting(taken.hash)
    assert disk.journaled() == {bytes(waiting.hash)}


class RunningAhead(Engine):
    """A cluster that is always two blocks ahead of this node, as under load."""

    def __init__(self) -> None:
        super().__init__()
        self.node: Node | None = None

    def committed_head(self) -> int | None:
        assert self.node is not None
        return int(self.node.head.block_number) + 2


async def test_a_send_waits_for_the_head_committed_when_it_came_not_a_moving_one(
    disk: Restartable,
) -> None:
    engine = RunningAhead()
    node = disk.start(engine)
    engine.node = node
    helper = new_node(ChainService(MemoryOverlayDB(), genesis()))
    blocks = []
    for nonce in range(2):
        await helper.submit(transfer(BOB, nonce))
        blocks.append((await helper.produce_block(allow_empty=False)).block)  # type: ignore[union-attr]
    send = asyncio.ensure_future(node.submit(transfer(ALICE, 0)))
    await asyncio.sleep(0.1)
    assert not send.done()
    for block in blocks:  # the node reaches block 2; the cluster is at 4 by then
        await node.import_block(block)
    assert await asyncio.wait_for(send, 2) == transfer(ALICE, 0).hash
    await helper.close()
