"""Who ``RaftEngine`` says leads, in process and in milliseconds.

pysyncobj is replaced at the two names the engine builds it from: ``SyncObj`` (whose
``onStateChanged`` callback the test calls, as pysyncobj's thread would) and
``ClusterState`` (the replicated state: the test "commits" an announcement by setting its
leader and telling the engine's listener, as the real state does when the log applies
it). What is checked is the engine's own logic: a new leader announces itself; a leader
that sees an older announcement commit after its own says it again (the fix for two
leaders a term apart after a partition healed, until now covered only by the network
tests); a follower hands its waiting pool to the announced leader; a node that stood for
election, or that was the announced leader and stepped down, names no leader until the
next announcement.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pysyncobj import FAIL_REASON
from pysyncobj.syncobj import _RAFT_STATE

from quorum_node.consensus import raft
from quorum_node.consensus.raft import RaftEngine
from quorum_node.consensus.raft_state import ClusterListener, RaftMember
from quorum_node.p2p.identity import Enode

pytestmark = pytest.mark.timeout(10)

GENESIS_HASH = b"\x11" * 32


def enode(index: int) -> Enode:
    return Enode(f"{index:0128x}", "127.0.0.1", 30300 + index, raft_port=50400 + index)


MEMBERS = [RaftMember(index, enode(index)) for index in (1, 2, 3)]
SELF, OTHER, THIRD = (member.enode for member in MEMBERS)


class FakeClusterState:
    """The replicated state as the engine reads it; ``commit_announcement`` is the log
    applying an ``announce_leader`` entry."""

    #: The one the engine built last (each test starts one engine).
    last: FakeClusterState | None = None

    def __init__(
        self, genesis_hash: bytes, members: tuple[tuple[int, str], ...], listener: ClusterListener
    ) -> None:
        self.tip = (0, genesis_hash)
        self.leader: str | None = None
        self.members = members
        self.listener = listener
        self.announcements: list[str] = []
        FakeClusterState.last = self

    def announce_leader(self, raft_address: str, callback: Callable[[Any, Any], None]) -> None:
        self.announcements.append(raft_address)
        callback(None, FAIL_REASON.SUCCESS)

    def commit_announcement(self, raft_address: str) -> None:
        self.leader = raft_address
        self.listener.leader_announced(raft_address)


class FakeSyncObj:
    last: FakeSyncObj | None = None

    def __init__(self, address: str, others: list[str], conf: Any, consumers: list[Any]) -> None:
        self.conf = conf
        FakeSyncObj.last = self

    def destroy_synchronous(self) -> None:
        pass

    def change_state(self, new_state: int) -> None:
        self.conf.onStateChanged(_RAFT_STATE.FOLLOWER, new_state)


class FakeChain:
    head = SimpleNamespace(hash=GENESIS_HASH, block_number=0)
    chain_id = 1337
    genesis_hash = GENESIS_HASH

    async def prepare_block(self, **_: Any) -> None:
        return None


class FakePool:
    def __init__(self, waiting: Sequence[Any]) -> None:
        self.waiting = list(waiting)

    def has_executable_transactions(self) -> bool:
        return False

    def waiting_transactions(self) -> list[Any]:
        return list(self.waiting)

    def is_waiting(self, transaction_hash: bytes) -> bool:
        return any(tx.hash == transaction_hash for tx in self.waiting)


class FakeNetwork:
    def __init__(self) -> None:
        self.peers = {
            member.enode.node_id: SimpleNamespace(enode=member.enode)
            for member in MEMBERS
            if member.enode != SELF
        }
        self.forwarded: list[tuple[Enode, list[bytes]]] = []

    async def send_transactions(self, peer: Any, raw_transactions: list[bytes]) -> int:
        self.forwarded.append((peer.enode, raw_transactions))
        return len(raw_transactions)

    def refresh_peers(self) -> None:
        pass

    def live_peers(self) -> list[Any]:
        return list(self.peers.values())


class Harness:
    def __init__(
        self, engine: RaftEngine, network: FakeNetwork, cluster: FakeClusterState, raft: FakeSyncObj
    ) -> None:
        self.engine = engine
        self.network = network
        self.cluster = cluster
        self.raft = raft

    async def settle(self) -> None:
        """Let the hops from "pysyncobj's thread" to the loop, and what they spawn, run."""
        for _ in range(5):
            await asyncio.sleep(0)

    def leader(self) -> Enode | None:
        member = self.engine.leader_member()
        return member.enode if member is not None else None


@pytest.fixture
def patched_pysyncobj(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(raft, "SyncObj", FakeSyncObj)
    monkeypatch.setattr(raft, "ClusterState", FakeClusterState)
    yield


async def started(tmp_path: Path, waiting: Sequence[Any] = ()) -> Harness:
    network = FakeNetwork()
    engine = RaftEngine(
        FakeChain(),  # type: ignore[arg-type]
        FakePool(waiting),
        network,  # type: ignore[arg-type]
        MEMBERS,
        SELF,
        password="test",
        raft_dir=tmp_path / "raft",
    )
    await engine.start()
    assert FakeClusterState.last is not None and FakeSyncObj.last is not None
    return Harness(engine, network, FakeClusterState.last, FakeSyncObj.last)


@pytest.mark.usefixtures("patched_pysyncobj")
async def test_a_new_leader_announces_itself_through_the_log(tmp_path: Path) -> None:
    harness = await started(tmp_path)
    try:
        assert harness.leader() is None

        harness.raft.change_state(_RAFT_STATE.LEADER)
        await harness.settle()

        assert harness.cluster.announcements == [SELF.raft_address]
        assert harness.engine.is_leader()
        assert harness.leader() == SELF
    finally:
        await harness.engine.stop()


@pytest.mark.usefixtures("patched_pysyncobj")
async def test_a_leader_that_sees_an_older_announcement_commit_announces_again(
    tmp_path: Path,
) -> None:
    harness = await started(tmp_path)
    try:
        harness.raft.change_state(_RAFT_STATE.LEADER)
        await harness.settle()
        harness.cluster.commit_announcement(SELF.raft_address)
        await harness.settle()
        assert harness.cluster.announcements == [SELF.raft_address]  # its own: nothing to do

        # A former leader's announcement, proposed before this node won, commits last.
        harness.cluster.commit_announcement(OTHER.raft_address)
        await harness.settle()

        assert harness.cluster.announcements == [SELF.raft_address, SELF.raft_address]
        assert harness.leader() == SELF
        assert harness.network.forwarded == []  # a leader forwards nothing
    finally:
        await harness.engine.stop()


@pytest.mark.usefixtures("patched_pysyncobj")
async def test_a_follower_hands_its_waiting_pool_to_the_announced_leader(tmp_path: Path) -> None:
    waiting = [SimpleNamespace(hash=b"\x01" * 32, encode=lambda: b"raw-transaction")]
    harness = await started(tmp_path, waiting)
    try:
        harness.cluster.commit_announcement(OTHER.raft_address)
        await harness.settle()

        assert harness.leader() == OTHER
        assert harness.network.forwarded == [(OTHER, [b"raw-transaction"])]
        assert harness.cluster.announcements == []  # a follower announces nobody
    finally:
        await harness.engine.stop()


@pytest.mark.usefixtures("patched_pysyncobj")
async def test_a_candidate_names_no_leader_until_the_next_announcement(tmp_path: Path) -> None:
    harness = await started(tmp_path)
    try:
        harness.cluster.commit_announcement(OTHER.raft_address)
        await harness.settle()
        assert harness.leader() == OTHER

        harness.raft.change_state(_RAFT_STATE.CANDIDATE)  # the leader went silent
        await harness.settle()
        assert harness.leader() is None
        assert harness.engine.role() == "verifier"

        harness.cluster.commit_announcement(THIRD.raft_address)
        await harness.settle()
        assert harness.leader() == THIRD
    finally:
        await harness.engine.stop()


@pytest.mark.usefixtures("patched_pysyncobj")
async def test_a_leader_that_stepped_down_does_not_name_itself(tmp_path: Path) -> None:
    harness = await started(tmp_path)
    try:
        harness.raft.change_state(_RAFT_STATE.LEADER)
        await harness.settle()
        harness.cluster.commit_announcement(SELF.raft_address)
        await harness.settle()

        harness.raft.change_state(_RAFT_STATE.FOLLOWER)  # e.g. no majority heard from
        await harness.settle()

        assert not harness.engine.is_leader()
        assert harness.cluster.leader == SELF.raft_address  # the log still says so
        assert harness.leader() is None
    finally:
        await harness.engine.stop()
