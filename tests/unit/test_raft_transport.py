"""The Raft transport with real pysyncobj members on loopback ports, in one process.

Each member is a ``SyncObj`` with quorum-py's transport and cluster state, as the node
builds it, but without a node around it, so a failure points at the transport, the
wire checks or the snapshots, and the whole file runs in seconds. A test plays a member
(or an outsider) by hand with ``RaftPeer``: a pickle as the first bytes and after a
handshake, a log entry no node could apply, a claim to be another member, a vote
request a thousand terms ahead. The process-level versions, through ``qnet`` bundles,
are in ``tests/network/test_raft_trust.py``.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pysyncobj import SyncObj

from quorum_node.consensus.raft_link import LocalIdentity
from quorum_node.consensus.raft_state import ClusterSnapshots, ClusterState, raft_conf
from quorum_node.consensus.raft_transport import RaftTransport
from quorum_node.consensus.raft_wire import REGULAR, dumps, install, replicated_signatures
from quorum_node.p2p.handshake import HandshakeError, Hello, LinkKeys
from quorum_node.p2p.identity import NodeKey
from tests.support.raft_peer import RaftPeer, pickle_that_creates, pysyncobj_frame
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(60)

NETWORK = b"\x07" * 32
GENESIS = b"\x00" * 32


def logged(caplog: pytest.LogCaptureFixture, text: str) -> None:
    """Wait for ``text`` in the log: members log on their own threads."""
    wait_until(lambda: text in caplog.text, 5, f"{text!r} in the log")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Listener:
    """What the engine would hear from the cluster state (nothing to do here)."""

    def block_accepted(self, number: int, block_hash: bytes) -> None:
        pass

    def leader_announced(self, raft_address: str) -> None:
        pass

    def members_changed(self) -> None:
        pass


@dataclass
class Member:
    key: NodeKey
    address: str
    folder: Path
    observed: list[tuple[str, str]] = field(default_factory=list)
    state: ClusterState | None = None
    raft: SyncObj | None = None

    @property
    def node_id(self) -> str:
        return self.key.node_id

    @property
    def host_port(self) -> tuple[str, int]:
        host, port = self.address.rsplit(":", 1)
        return host, int(port)


class Cluster:
    """Members, the directory their transports share, and their start and stop."""

    def __init__(self, tmp_path: Path, size: int) -> None:
        self.members = [
            Member(NodeKey(os.urandom(32)), f"127.0.0.1:{free_port()}", tmp_path / f"m{i}")
            for i in range(size)
        ]
        self._lock = threading.Lock()

    # the MemberDirectory every transport asks
    def node_id_at(self, raft_address: str) -> str | None:
        return next((m.node_id for m in self.members if m.address == raft_address), None)

    def raft_address_of(self, node_id: str) -> str | None:
        return next((m.address for m in self.members if m.node_id == node_id), None)

    def start(self, member: Member) -> None:
        state = ClusterState(GENESIS, (), Listener())
        conf = raft_conf(member.address, member.folder, ClusterSnapshots(state), 0.2)

        def observe(node_id: str, kind: str) -> None:
            with self._lock:
                member.observed.append((node_id, kind))

        transport = functools.partial(
            RaftTransport,
            local=LocalIdentity(member.key, NETWORK),
            directory=self,
            signatures=replicated_signatures(ClusterState),
            observer=observe,
        )
        others = [m.address for m in self.members if m is not member]
        member.state = state
        member.raft = SyncObj(
            member.address, others, conf=conf, consumers=[state], transportClass=transport
        )

    def stop(self, member: Member) -> None:
        if member.raft is not None:
            member.raft.destroy_synchronous()
            member.raft = None

    def leader(self, among: list[Member] | None = None) -> Member:
        def leading() -> Member | None:
            running = [m for m in (among or self.members) if m.raft is not None]
            leaders = [m for m in running if m.raft is not None and m.raft._isLeader()]  # noqa: SLF001
            return leaders[0] if len(leaders) == 1 else None

        return wait_until(leading, 15, "one leader")

    def propose(self, number: int, among: list[Member] | None = None) -> None:
        """Replicate block ``number`` through the leader and wait until ``among`` hold it."""
        leader = self.leader(among)
        assert leader.state is not None
        parent = (number - 1).to_bytes(32, "big") if number > 1 else GENESIS
        leader.state.propose(number, number.to_bytes(32, "big"), parent, sync=True, timeout=5)
        for member in among or self.members:
            wait_until(
                lambda m=member: m.state is not None and m.state.tip[0] == number,
                10,
                f"block {number} at {member.address}",
            )


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    install()
    made = Cluster(tmp_path, 3)
    yield made
    for member in made.members:
        made.stop(member)


@pytest.fixture
def running(cluster: Cluster) -> Cluster:
    for member in cluster.members:
        cluster.start(member)
    cluster.propose(1)
    return cluster


def test_members_elect_and_replicate_over_authenticated_links(running: Cluster) -> None:
    running.propose(2)
    assert {m.state.tip for m in running.members if m.state} == {(2, (2).to_bytes(32, "big"))}
    assert all(not m.observed for m in running.members)


def test_a_restarted_member_and_a_new_one_catch_up_through_a_snapshot(cluster: Cluster) -> None:
    first, second, late = cluster.members
    for member in (first, second):
        cluster.start(member)
    for number in range(1, 4):
        cluster.propose(number, [first, second])
    for member in (first, second):
        assert member.raft is not None
        member.raft.forceLogCompaction()
        wait_until((member.folder / "raft.dump").exists, 10, "a snapshot on disk")
    cluster.propose(4, [first, second])

    cluster.start(late)  # an empty folder: the leader sends its snapshot, then the log
    wait_until(lambda: late.state is not None and late.state.tip[0] == 4, 15, "the late member")
    assert (late.folder / "raft.dump").exists()  # it caught up through the snapshot

    cluster.stop(second)  # restarted from its own snapshot and journal
    cluster.start(second)
    wait_until(lambda: second.state is not None and second.state.tip[0] == 4, 15, "restart")
    cluster.propose(5)


def test_a_pickle_as_the_first_bytes_is_refused(
    running: Cluster, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    target = running.members[0]
    marker = tmp_path / "created"
    for payload in (pysyncobj_frame(marker), len(b"x").to_bytes(4, "big") + b"x"):
        with RaftPeer(target.host_port, NodeKey(os.urandom(32)), NETWORK) as outsider:
            outsider.send_raw(payload)
            assert outsider.closed_by_node()
    with RaftPeer(target.host_port, NodeKey(os.urandom(32)), NETWORK) as outsider:
        outsider.send_frame(pickle_that_creates(marker)[:100])  # a frame the size of a hello
        assert outsider.closed_by_node()
    assert not marker.exists()
    wait_until(lambda: ("unknown", "refused_link") in target.observed, 5, "the refusal counted")
    logged(caplog, "refused a raft link with 127.0.0.1:")
    running.propose(2)


def test_an_outsider_with_a_key_of_its_own_is_not_admitted(
    running: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    outsider = NodeKey(os.urandom(32))
    with RaftPeer(running.members[0].host_port, outsider, NETWORK) as peer:
        with pytest.raises(ConnectionError):
            peer.handshake()
    logged(caplog, f"node {outsider.node_id[:16]}… is not a member")


def test_a_pickle_from_a_member_after_its_handshake_is_refused_and_named(
    running: Cluster, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    target, member = running.members[0], running.members[2]
    marker = tmp_path / "created"
    running.stop(member)  # its own link, dialled again, would replace the test's
    with RaftPeer(target.host_port, member.key, NETWORK) as peer:
        assert peer.handshake(expect=target.node_id) == target.node_id
        peer.send_plaintext(pickle_that_creates(marker))
        assert peer.closed_by_node()
    assert not marker.exists()
    wait_until(lambda: (member.node_id, "undecodable") in target.observed, 5, "counted")
    logged(caplog, f"raft member node {member.node_id[:16]}… at 127.0.0.1:")
    running.start(member)
    running.propose(2)


@pytest.mark.parametrize(
    "command",
    [
        bytes([REGULAR]) + b"PLACEHOLDER",
        bytes([REGULAR]) + dumps((0, ("not a block number", b"", b""))),
        bytes([REGULAR]) + dumps((99, ())),
    ],
    ids=["pickle", "wrong-argument", "unknown-method"],
)
def test_a_log_entry_no_node_could_apply_never_enters_the_log(
    running: Cluster, tmp_path: Path, command: bytes
) -> None:
    marker = tmp_path / "created"
    if command.endswith(b"PLACEHOLDER"):
        command = bytes([REGULAR]) + pickle_that_creates(marker)
    leader = running.leader()
    sender = next(m for m in running.members if m is not leader)
    running.stop(sender)  # its own link, dialled again, would replace the test's
    assert leader.raft is not None
    log_before = leader.raft.getStatus()["log_len"]
    with RaftPeer(leader.host_port, sender.key, NETWORK) as peer:
        peer.handshake()
        peer.send_message({"type": "apply_command", "command": command, "request_id": 1})
        assert peer.closed_by_node()
    wait_until(lambda: (sender.node_id, "bad_command") in leader.observed, 5, "counted")
    assert leader.raft.getStatus()["log_len"] == log_before
    assert not marker.exists()
    running.start(sender)
    running.propose(2)


def test_a_member_cannot_speak_as_another(
    running: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    target, victim, mallory = running.members
    with RaftPeer(target.host_port, mallory.key, NETWORK, claim=victim.node_id) as peer:
        with pytest.raises(HandshakeError):
            peer.handshake()
        peer.send_frame(bytes(16))  # a confirmation it cannot make
        assert peer.closed_by_node()
    wait_until(lambda: ("unknown", "refused_link") in target.observed, 5, "counted")
    logged(caplog, f"(claiming to be node {victim.node_id[:16]}…)")
    assert all(kind != "refused_link" for _, kind in victim.observed)
    running.propose(2)  # the real member's link still carries its traffic


def test_a_vote_request_far_ahead_is_named_and_the_cluster_recovers(
    running: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    target, other, member = running.members
    running.stop(member)
    assert target.raft is not None
    term = target.raft.raftCurrentTerm
    with RaftPeer(target.host_port, member.key, NETWORK) as peer:
        peer.handshake()
        peer.send_message(
            {"type": "request_vote", "term": term + 1000, "last_log_index": 0, "last_log_term": 0}
        )
        wait_until(lambda: (member.node_id, "absurd_term") in target.observed, 5, "counted")
    logged(caplog, f"raft member node {member.node_id[:16]}…")
    assert "asked for a vote 1000 terms ahead" in caplog.text
    running.start(member)
    running.propose(2)
    assert target.raft.raftCurrentTerm > term + 1000


def test_an_address_answering_as_another_node_is_refused(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    """The member at the greater address dials; whoever answers there with another key
    is refused, whatever it proves about itself."""
    dialler, listed = sorted(cluster.members[:2], key=lambda m: m.address, reverse=True)
    impostor = NodeKey(os.urandom(32))
    server = socket.create_server(listed.host_port)
    served = threading.Event()

    def answer() -> None:
        connection, _ = server.accept()
        with connection:
            size = int.from_bytes(connection.recv(4), "big")
            theirs = Hello.from_bytes(connection.recv(size))
            ours = Hello(bytes.fromhex(impostor.node_id), os.urandom(32))
            keys = LinkKeys.derive(
                impostor.shared_secret(theirs.node_id),
                initiator=theirs,
                responder=ours,
                we_initiated=False,
                network=NETWORK,
            )
            reply = ours.to_bytes() + keys.confirmation()
            connection.sendall(len(reply).to_bytes(4, "big") + reply)
            connection.settimeout(5)
            while connection.recv(1024):
                pass
        served.set()

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        cluster.start(dialler)
        assert served.wait(10)
        wait_until(lambda: ("unknown", "refused_link") in dialler.observed, 5, "counted")
        logged(caplog, f"is {impostor.node_id[:16]}…, not the member {listed.node_id[:16]}…")
    finally:
        server.close()


@pytest.fixture(autouse=True)
def _capture_transport_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="quorum_node.consensus.raft_transport")
