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
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pysyncobj import FAIL_REASON
from pysyncobj.syncobj import _RAFT_STATE

from quorum_node.consensus import raft
from quorum_node.consensus.raft import RaftEngine
from quorum_node.consensus.raft_state import ClusterListener, RaftMember
from quorum_node.p2p.identity import Enode, NodeKey
from quorum_node.p2p.permissions import PermissionedNodes

pytestmark = pytest.mark.timeout(10)

GENESIS_HASH = b"\x11" * 32


def enode(index: int) -> Enode:
    return Enode(f"{index:0128x}", "127.0.0.1", 30300 + index, raft_port=50400 + index)


MEMBERS = [RaftMember(index, enode(index)) for index in (1, 2, 3)]
SELF, OTHER, THIRD = (member.enode for member in MEMBERS)


class FakeClusterState:
    """The replicated state as the engine reads it (``Harness.log_announces`` applies an
    announcement to it, as the log would)."""

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


class FakeSyncObj:
    last: FakeSyncObj | None = None

    def __init__(
        self, address: str, others: list[str], conf: Any, consumers: list[Any], **_: Any
    ) -> None:
        self.conf = conf
        #: pysyncobj's view: caught up with a leader since start, and which one it follows
        self.ready = False
        self.following: str | None = None
        FakeSyncObj.last = self

    def isReady(self) -> bool:  # noqa: N802 - pysyncobj's name
        return self.ready

    def _getLeader(self) -> Any:  # noqa: N802
        return None if self.following is None else SimpleNamespace(address=self.following)

    def destroy_synchronous(self) -> None:
        pass


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
    node_key = NodeKey(b"\x01" * 32)
    permissions = PermissionedNodes(None)

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

    async def role_becomes(self, state: int) -> None:
        """pysyncobj says this node's own role changed."""
        self.raft.conf.onStateChanged(_RAFT_STATE.FOLLOWER, state)
        await self._settle()

    async def log_announces(self, member: Enode) -> None:
        """The log applies ``member``'s announcement that it leads."""
        self.cluster.leader = member.raft_address
        self.cluster.listener.leader_announced(member.raft_address)
        await self._settle()

    async def _settle(self) -> None:
        """Let the hops from "pysyncobj's thread" to the loop, and what they spawn, run."""
        for _ in range(5):
            await asyncio.sleep(0)

    def leader(self) -> Enode | None:
        member = self.engine.leader_member()
        return member.enode if member is not None else None


Start = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def start(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AsyncIterator[Start]:
    """Starts an engine over the fakes (``waiting``: its pool's waiting transactions);
    every engine started is stopped after the test."""
    monkeypatch.setattr(raft, "SyncObj", FakeSyncObj)
    monkeypatch.setattr(raft, "ClusterState", FakeClusterState)
    engines: list[RaftEngine] = []

    async def start_one(waiting: Sequence[Any] = ()) -> Harness:
        network = FakeNetwork()
        engine = RaftEngine(
            FakeChain(),  # type: ignore[arg-type]
            FakePool(waiting),
            network,  # type: ignore[arg-type]
            MEMBERS,
            SELF,
            raft_dir=tmp_path / "raft",
        )
        await engine.start()
        engines.append(engine)
        assert FakeClusterState.last is not None and FakeSyncObj.last is not None
        return Harness(engine, network, FakeClusterState.last, FakeSyncObj.last)

    yield start_one
    for engine in engines:
        await engine.stop()


async def test_a_new_leader_announces_itself_through_the_log(start: Start) -> None:
    harness = await start()
    assert harness.leader() is None

    await harness.role_becomes(_RAFT_STATE.LEADER)

    assert harness.cluster.announcements == [SELF.raft_address]
    assert harness.engine.is_leader()
    assert harness.leader() == SELF


async def test_a_leader_that_sees_an_older_announcement_commit_announces_again(
    start: Start,
) -> None:
    harness = await start()
    await harness.role_becomes(_RAFT_STATE.LEADER)
    await harness.log_announces(SELF)
    assert harness.cluster.announcements == [SELF.raft_address]  # its own: nothing to do

    # A former leader's announcement, proposed before this node won, commits last.
    await harness.log_announces(OTHER)

    assert harness.cluster.announcements == [SELF.raft_address, SELF.raft_address]
    assert harness.leader() == SELF
    assert harness.network.forwarded == []  # a leader forwards nothing


async def test_a_follower_hands_its_waiting_pool_to_the_announced_leader(start: Start) -> None:
    harness = await start([SimpleNamespace(hash=b"\x01" * 32, encode=lambda: b"raw-transaction")])

    await harness.log_announces(OTHER)

    assert harness.leader() == OTHER
    assert harness.network.forwarded == [(OTHER, [b"raw-transaction"])]
    assert harness.cluster.announcements == []  # a follower announces nobody


async def test_a_candidate_names_no_leader_until_the_next_announcement(start: Start) -> None:
    harness = await start()
    await harness.log_announces(OTHER)
    assert harness.leader() == OTHER

    await harness.role_becomes(_RAFT_STATE.CANDIDATE)  # the leader went silent
    assert harness.leader() is None
    assert harness.engine.role() == "verifier"

    await harness.log_announces(THIRD)
    assert harness.leader() == THIRD


async def test_a_leader_that_stepped_down_does_not_name_itself(start: Start) -> None:
    harness = await start()
    await harness.role_becomes(_RAFT_STATE.LEADER)
    await harness.log_announces(SELF)

    await harness.role_becomes(_RAFT_STATE.FOLLOWER)  # e.g. no majority heard from

    assert not harness.engine.is_leader()
    assert harness.cluster.leader == SELF.raft_address  # the log still says so
    assert harness.leader() is None


# --- what the node may treat as the committed head (the gate of every send) -----------


def heard(harness: Harness, *members: Enode, ago: float = 0.0) -> None:
    """The transport got a message from each of ``members`` ``ago`` seconds back."""
    for member in members:
        harness.engine._heard[member.raft_address] = time.monotonic() - ago  # noqa: SLF001


async def test_after_a_start_nothing_is_known_until_caught_up_with_a_leader(start: Start) -> None:
    harness = await start()
    harness.cluster.tip = (7, b"\x07" * 32)
    harness.raft.following = OTHER.raft_address
    heard(harness, OTHER)
    assert harness.engine.committed_head() is None  # pysyncobj not ready: its log is old

    harness.raft.ready = True
    assert harness.engine.committed_head() == 7


async def test_a_follower_knows_the_committed_head_only_while_it_hears_its_leader(
    start: Start,
) -> None:
    harness = await start()
    harness.raft.ready = True
    harness.cluster.tip = (7, b"\x07" * 32)
    assert harness.engine.committed_head() is None  # no leader

    harness.raft.following = OTHER.raft_address
    heard(harness, OTHER, ago=1.0)
    assert harness.engine.committed_head() is None  # a leader, gone quiet

    heard(harness, OTHER)
    assert harness.engine.committed_head() == 7
    heard(harness, THIRD)
    harness.raft.following = THIRD.raft_address  # a new leader, heard from
    assert harness.engine.committed_head() == 7


async def test_a_leader_knows_it_only_while_a_majority_hears_it(start: Start) -> None:
    harness = await start()
    harness.raft.ready = True
    harness.cluster.tip = (3, b"\x03" * 32)
    await harness.role_becomes(_RAFT_STATE.LEADER)
    assert harness.engine.committed_head() is None  # nobody answered yet: 1 of 3

    heard(harness, OTHER)
    assert harness.engine.committed_head() == 3  # 2 of 3
    heard(harness, OTHER, ago=1.0)
    heard(harness, THIRD, ago=1.0)
    assert harness.engine.committed_head() is None
