"""``BlockApplier``'s branches with real in-memory nodes behind a recording
``ReplicatedChain`` and fake ``BlockPeers``: the leader's prepared block, a pushed body, a
body that does not extend the head, bodies fetched from peers (one failing), peers whose
blocks do not chain, the halt on divergence, and ``wait_for_head``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

import pytest
from eth.abc import BlockAPI, BlockHeaderAPI
from eth_utils import encode_hex

from quorum_node.chain.service import CommittedBlock, PreparedBlock
from quorum_node.consensus import raft_apply
from quorum_node.consensus.raft_apply import BlockApplier
from quorum_node.errors import ChainError
from quorum_node.node import Node
from quorum_node.p2p.identity import Enode
from quorum_node.p2p.network import Peer, PeerUnreachable
from tests.support.inproc import ADDRESSES, KEYS, transfer
from tests.unit.conftest import NodeFactory

pytestmark = pytest.mark.timeout(20)


class RecordingChain:
    """A ``ReplicatedChain`` over a real node that records what the applier asked of it."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.calls: list[tuple[str, int]] = []

    @property
    def head(self) -> BlockHeaderAPI:
        return self.node.head

    @property
    def chain_id(self) -> int:
        return self.node.chain_id

    @property
    def genesis_hash(self) -> bytes:
        return self.node.genesis_hash

    async def prepare_block(
        self, *, allow_empty: bool, max_transactions: int | None = None
    ) -> PreparedBlock | None:
        return await self.node.prepare_block(
            allow_empty=allow_empty, max_transactions=max_transactions
        )

    async def commit_prepared(self, prepared: PreparedBlock) -> CommittedBlock:
        self.calls.append(("commit_prepared", prepared.block.number))
        return await self.node.commit_prepared(prepared)

    async def import_block(self, block: BlockAPI) -> CommittedBlock:
        self.calls.append(("import_block", block.number))
        return await self.node.import_block(block)

    async def decode_blocks(self, encoded_blocks: Sequence[bytes]) -> list[BlockAPI]:
        self.calls.append(("decode_blocks", len(encoded_blocks)))
        return await self.node.decode_blocks(encoded_blocks)

    async def encoded_blocks(self, start: int, count: int) -> list[bytes]:
        return await self.node.encoded_blocks(start, count)


BlockSource = Callable[[int, int], Awaitable[list[bytes]]]


def peer(index: int) -> Peer:
    return Peer(Enode(f"{index:02x}" * 64, f"10.0.0.{index}", 30300 + index))


class FakePeers:
    """``BlockPeers`` whose every peer answers from its own source, or raises."""

    def __init__(self, *answers: BlockSource | Exception) -> None:
        self._peers = [peer(index + 1) for index in range(len(answers))]
        self._answers = dict(zip((p.enode.host for p in self._peers), answers, strict=True))
        self.asked: list[tuple[str, int, int]] = []

    def peers_to_ask(self) -> Sequence[Peer]:
        return list(self._peers)

    async def fetch_blocks(self, asked: Peer, start: int, count: int) -> list[bytes]:
        self.asked.append((asked.enode.host, start, count))
        answer = self._answers[asked.enode.host]
        if isinstance(answer, Exception):
            raise answer
        return await answer(start, count)


def garbage(_start: int, _count: int) -> Awaitable[list[bytes]]:
    async def answer() -> list[bytes]:
        return [b"\xc3\x01\x02\x03"]

    return answer()


async def build_blocks(node: Node, count: int, *, key_index: int = 0) -> list[bytes]:
    """``count`` blocks of one transfer each on ``node``; their hashes."""
    hashes: list[bytes] = []
    for _ in range(count):
        nonce = node.chain.head_state().get_nonce(ADDRESSES[key_index])
        await node.submit(transfer(KEYS[key_index], nonce))
        committed = await node.produce_block(allow_empty=False)
        assert committed is not None
        hashes.append(committed.block.hash)
    return hashes


async def test_the_leaders_prepared_block_is_committed_when_it_is_the_accepted_one(
    make_node: NodeFactory,
) -> None:
    chain = RecordingChain(make_node())
    peers = FakePeers()
    applier = BlockApplier(chain, peers)
    await chain.node.submit(transfer(KEYS[0], 0))
    prepared = await chain.prepare_block(allow_empty=False)
    assert prepared is not None
    applier.prepared = prepared
    applier.accept(1, prepared.block.hash)

    await applier.apply_to(1, prepared.block.hash)

    assert chain.calls == [("commit_prepared", 1)]
    assert chain.head.hash == prepared.block.hash
    assert applier.prepared is None
    assert applier.accepted == {}
    assert peers.asked == []
    assert applier.halted is None


async def test_a_prepared_block_that_lost_is_not_committed_the_accepted_one_is_imported(
    make_node: NodeFactory,
) -> None:
    winner = make_node()
    (winning_hash,) = await build_blocks(winner, 1, key_index=1)
    chain = RecordingChain(make_node())
    applier = BlockApplier(chain, FakePeers())
    await chain.node.submit(transfer(KEYS[0], 0))
    applier.prepared = await chain.prepare_block(allow_empty=False)
    applier.add_body((await winner.encoded_blocks(1, 1))[0])

    await applier.apply_to(1, winning_hash)

    assert chain.calls == [("decode_blocks", 1), ("import_block", 1)]
    assert chain.head.hash == winning_hash


async def test_a_pushed_body_is_imported(make_node: NodeFactory) -> None:
    leader = make_node()
    (block_hash,) = await build_blocks(leader, 1)
    chain = RecordingChain(make_node())
    peers = FakePeers()
    applier = BlockApplier(chain, peers)

    assert applier.add_body((await leader.encoded_blocks(1, 1))[0]) == block_hash
    await applier.apply_to(1, block_hash)

    assert chain.calls == [("decode_blocks", 1), ("import_block", 1)]
    assert chain.head.hash == block_hash
    assert chain.head.state_root == leader.head.state_root
    assert peers.asked == []


async def test_a_pushed_body_that_does_not_extend_the_head_is_not_imported_peers_are_asked(
    make_node: NodeFactory,
) -> None:
    """A body with the agreed hash whose parent is not the head only happens when this
    node's head already differs from the cluster's; peers cannot chain from it either."""
    leader = make_node()
    leader_hashes = await build_blocks(leader, 2)
    chain = RecordingChain(make_node())
    (own_hash,) = await build_blocks(chain.node, 1, key_index=1)
    peers = FakePeers(leader.encoded_blocks)
    applier = BlockApplier(chain, peers)
    applier.accept(1, leader_hashes[0])
    applier.add_body((await leader.encoded_blocks(2, 1))[0])

    with pytest.raises(ChainError, match=r"no peer could supply block #2: .*do not chain"):
        await applier.apply_to(2, leader_hashes[1])

    assert ("import_block", 2) not in chain.calls
    assert chain.calls == [("decode_blocks", 1), ("decode_blocks", 1)]
    assert peers.asked == [("10.0.0.1", 2, 1)]
    assert chain.head.hash == own_hash


async def test_missing_bodies_come_from_the_first_peer_that_answers(
    make_node: NodeFactory,
) -> None:
    leader = make_node()
    hashes = await build_blocks(leader, 3)
    chain = RecordingChain(make_node())
    peers = FakePeers(
        PeerUnreachable("10.0.0.1:30301 refused the connection"), leader.encoded_blocks
    )
    applier = BlockApplier(chain, peers)
    for number, block_hash in enumerate(hashes, start=1):
        applier.accept(number, block_hash)

    await applier.apply_to(3, hashes[-1])

    assert peers.asked == [("10.0.0.1", 1, 3), ("10.0.0.2", 1, 3)]
    assert [call for call in chain.calls if call[0] == "import_block"] == [
        ("import_block", 1),
        ("import_block", 2),
        ("import_block", 3),
    ]
    assert chain.head.hash == hashes[-1]
    assert chain.head.state_root == leader.head.state_root
    assert applier.accepted == {}


async def test_an_evicted_pushed_body_is_fetched_from_a_peer(
    make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(raft_apply, "BODY_CACHE_LIMIT", 2)
    leader = make_node()
    hashes = await build_blocks(leader, 3)
    chain = RecordingChain(make_node())
    peers = FakePeers(leader.encoded_blocks)
    applier = BlockApplier(chain, peers)
    for number, (block_hash, body) in enumerate(
        zip(hashes, await leader.encoded_blocks(1, 3), strict=True), start=1
    ):
        applier.accept(number, block_hash)
        applier.add_body(body)

    await applier.apply_to(3, hashes[-1])

    assert peers.asked == [("10.0.0.1", 1, 3)]
    assert chain.head.hash == hashes[-1]


async def test_blocks_that_do_not_chain_are_refused_naming_the_block_and_each_peer(
    make_node: NodeFactory,
) -> None:
    leader, impostor = make_node(), make_node()
    hashes = await build_blocks(leader, 2)
    await build_blocks(impostor, 2, key_index=2)

    async def nothing(_start: int, _count: int) -> list[bytes]:
        return []

    chain = RecordingChain(make_node())
    peers = FakePeers(impostor.encoded_blocks, garbage, nothing)
    applier = BlockApplier(chain, peers)
    applier.accept(1, hashes[0])

    with pytest.raises(ChainError) as caught:
        await applier.apply_to(2, hashes[1])

    message = str(caught.value)
    assert message.startswith("no peer could supply block #1: ")
    assert "10.0.0.1:30301 sent blocks that do not chain" in message
    assert "block does not decode" in message
    assert "10.0.0.3:30303 sent blocks that do not chain" in message
    assert [call for call in chain.calls if call[0] == "import_block"] == []
    assert chain.head.block_number == 0


async def test_a_head_that_differs_from_the_agreed_block_halts_the_applier(
    make_node: NodeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    leader = make_node()
    agreed = await build_blocks(leader, 2)
    chain = RecordingChain(make_node())
    (own_hash,) = await build_blocks(chain.node, 1, key_index=1)
    peers = FakePeers(leader.encoded_blocks)
    applier = BlockApplier(chain, peers)
    applier.add_body((await leader.encoded_blocks(2, 1))[0])

    with caplog.at_level(logging.ERROR, logger=raft_apply.__name__):
        await applier.apply_to(1, agreed[0])

    assert applier.halted == (
        f"local block #1 {encode_hex(own_hash)} differs from the cluster's {encode_hex(agreed[0])}"
    )
    assert applier.halted in caplog.text

    await applier.apply_to(2, agreed[1])

    assert chain.calls == []
    assert peers.asked == []
    assert chain.head.hash == own_hash


async def test_wait_for_head_wakes_when_a_block_is_applied(make_node: NodeFactory) -> None:
    leader = make_node()
    hashes = await build_blocks(leader, 2)
    chain = RecordingChain(make_node())
    applier = BlockApplier(chain, FakePeers())
    await asyncio.wait_for(applier.wait_for_head(0), timeout=1)
    waiter = asyncio.create_task(applier.wait_for_head(2))
    for _ in range(3):
        await asyncio.sleep(0)
    assert not waiter.done()

    for body in await leader.encoded_blocks(1, 2):
        applier.add_body(body)
    applier.accept(1, hashes[0])
    await applier.apply_to(2, hashes[1])

    await asyncio.wait_for(waiter, timeout=2)
    assert chain.head.hash == hashes[1]


@pytest.mark.parametrize(
    "not_a_block",
    [b"", b"\x80", b"\xc3\x01\x02\x03", b"\xc4\xc0\xc0\xc0\xc0" + b"\x00"],
    ids=["empty", "a string", "a list of strings", "trailing bytes"],
)
async def test_add_body_of_bytes_that_are_not_a_block_raises_chain_error(
    make_node: NodeFactory, not_a_block: bytes
) -> None:
    chain = RecordingChain(make_node())
    applier = BlockApplier(chain, FakePeers())

    with pytest.raises(ChainError, match="block does not decode"):
        applier.add_body(not_a_block)

    assert chain.calls == []
