"""What the Raft cluster agrees on, replicated through pysyncobj's log.

``ClusterState`` is the replicated state machine: the last accepted block, the leader
that announced itself last, and the members with their raft ids. Its ``@replicated``
methods run on every node, in log order, on pysyncobj's thread; they must be
deterministic and cheap, and they tell the engine what changed through a
``ClusterListener`` (which hops to the event loop). Because members and leader live in
the log, every node sees a membership change and knows the enode of a leader it has
never been configured with.

Nothing here is pickled. Log entries are msgpack (``raft_wire``), and a member's entry
is checked against the argument types of these methods before it enters the log; the
methods still never raise on odd values (an entry that fails to apply would fail on
every node at every restart). Snapshots are written and read by ``ClusterSnapshots``
in a format of ours, checked field by field when read, whether from this node's disk or
from a leader.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pysyncobj import SyncObjConf, SyncObjConsumer, replicated
from pysyncobj.node import TCPNode

from quorum_node.config import RAFT_FORMAT_FILE
from quorum_node.consensus.raft_wire import RaftWireError, check_address, dumps, loads
from quorum_node.errors import ConfigError
from quorum_node.p2p.identity import Enode

#: Written into the Raft folder; a folder with a log but without it is from a version
#: whose log entries, journal and snapshots were pickles.
RAFT_FORMAT = "quorum-py raft 2: msgpack entries and snapshots, links keyed by node keys\n"
#: The snapshot of a cluster of a few members is a few KiB; refuse to read a huge one.
MAX_SNAPSHOT_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class RaftMember:
    raft_id: int
    enode: Enode


class ClusterListener(Protocol):
    """Told of every applied change; called on pysyncobj's thread."""

    def block_accepted(self, number: int, block_hash: bytes) -> None: ...

    def leader_announced(self, raft_address: str) -> None: ...

    def members_changed(self) -> None: ...


class ClusterState(SyncObjConsumer):  # type: ignore[misc]
    """The replicated state; see the module docstring.

    Values are replaced, never mutated, so the event loop can read them while
    pysyncobj's thread applies the log.
    """

    def __init__(
        self,
        genesis_hash: bytes,
        members: tuple[tuple[int, str], ...],
        listener: ClusterListener,
    ) -> None:
        self._listener = listener  # set before the base __init__: never replicated
        super().__init__()
        self.tip: tuple[int, bytes] = (0, genesis_hash)
        self.leader: str | None = None
        self.members: tuple[tuple[int, str], ...] = members

    @replicated  # type: ignore[misc]
    def propose(self, number: int, block_hash: bytes, parent_hash: bytes) -> bool:
        """Accept a block only if it extends the last accepted one, so a block an old
        leader built on a stale head is ignored the same way on every node."""
        tip_number, tip_hash = self.tip
        if number != tip_number + 1 or parent_hash != tip_hash:
            return False
        self.tip = (number, block_hash)
        self._listener.block_accepted(number, block_hash)
        return True

    @replicated  # type: ignore[misc]
    def announce_leader(self, raft_address: str) -> None:
        """A node that became leader says so through the log, so every node learns the
        leader from the replicated state (and in log order, the newest last)."""
        self.leader = raft_address
        self._listener.leader_announced(raft_address)

    @replicated  # type: ignore[misc]
    def add_member(self, enode_text: str) -> int:
        """Record a member and return its raft id (the next free one; a node already
        recorded keeps its id); 0 records nothing (not an enode URL with a raft port)."""
        try:
            enode = Enode.parse(enode_text)
        except ConfigError:
            return 0
        if enode.raft_port is None:
            return 0
        node_id = enode.node_id
        for raft_id, text in self.members:
            if Enode.parse(text).node_id == node_id:
                return raft_id
        raft_id = max((raft_id for raft_id, _ in self.members), default=0) + 1
        self.members = (*self.members, (raft_id, enode_text))
        self._listener.members_changed()
        return raft_id

    @replicated  # type: ignore[misc]
    def remove_member(self, raft_id: int) -> bool:
        remaining = tuple(member for member in self.members if member[0] != raft_id)
        if len(remaining) == len(self.members):
            return False
        self.members = remaining
        self._listener.members_changed()
        return True

    def restore(
        self,
        tip: tuple[int, bytes],
        leader: str | None,
        members: tuple[tuple[int, str], ...],
    ) -> None:
        """Take the state a snapshot holds (already checked) and tell the listener."""
        self.tip = tip
        self.leader = leader
        self.members = members
        self._listener.members_changed()
        self._listener.block_accepted(*tip)

    def _deserialize(self, data: Any) -> None:
        raise RaftWireError("undecodable", "cluster state is restored by ClusterSnapshots")


class ClusterSnapshots:
    """pysyncobj's snapshot file (``SyncObjConf.serializer`` and ``deserializer``):
    the cluster state with the two log entries and the members pysyncobj keeps."""

    def __init__(self, state: ClusterState) -> None:
        self._state = state

    def save(self, path: str, raft_part: tuple[Any, Any, Iterable[TCPNode]]) -> None:
        last_applied, before, nodes = raft_part
        document = {
            "format": 1,
            "tip": list(self._state.tip),
            "leader": self._state.leader,
            "members": [list(member) for member in self._state.members],
            "entries": [list(last_applied), list(before)],
            "nodes": sorted(node.address for node in nodes),
        }
        with open(path, "wb") as file:
            file.write(dumps(document))

    def load(self, path: str) -> tuple[Any, Any, list[TCPNode]]:
        """Read and check a snapshot, restore the cluster state from it, and return what
        pysyncobj keeps itself. ``RaftWireError`` if any field is not what it must be
        (pysyncobj then logs it and keeps its state)."""
        with open(path, "rb") as file:
            encoded = file.read(MAX_SNAPSHOT_BYTES + 1)
        if len(encoded) > MAX_SNAPSHOT_BYTES:
            raise RaftWireError("malformed", f"snapshot over {MAX_SNAPSHOT_BYTES} bytes")
        document = loads(encoded)
        try:
            tip, leader, members, entries, nodes = _checked_snapshot(document)
        except (KeyError, TypeError, ValueError, ConfigError) as exc:
            raise RaftWireError("malformed", f"snapshot: {exc}") from None
        self._state.restore(tip, leader, members)
        return entries[0], entries[1], nodes


def _checked_snapshot(
    document: Any,
) -> tuple[
    tuple[int, bytes],
    str | None,
    tuple[tuple[int, str], ...],
    list[tuple[bytes, int, int]],
    list[TCPNode],
]:
    if not isinstance(document, dict) or document.get("format") != 1:
        raise ValueError("not a snapshot of format 1")
    number, block_hash = document["tip"]
    if type(number) is not int or number < 0 or type(block_hash) is not bytes:
        raise ValueError("tip is not (number, hash)")
    leader = document["leader"]
    if leader is not None:
        check_address(leader)
    members = []
    for raft_id, text in document["members"]:
        if type(raft_id) is not int or not isinstance(text, str):
            raise ValueError("a member is not (raft id, enode)")
        Enode.parse(text)
        members.append((raft_id, text))
    entries = []
    for command, index, term in document["entries"]:
        if type(command) is not bytes or type(index) is not int or type(term) is not int:
            raise ValueError("an entry is not (command, index, term)")
        entries.append((command, index, term))
    if len(entries) != 2:
        raise ValueError("a snapshot holds two entries")
    nodes = [TCPNode(check_address(address)) for address in document["nodes"]]
    return (number, block_hash), leader, tuple(members), entries, nodes


def check_raft_folder(datadir: Path) -> None:
    """Refuse a Raft folder an earlier version wrote (its entries are pickles); mark a
    new one with this version's format."""
    marker = datadir / RAFT_FORMAT_FILE
    if marker.exists():
        if marker.read_text() == RAFT_FORMAT:
            return
        raise ConfigError(f"{datadir} holds a Raft log of an unknown format: recreate the network")
    if any(datadir.glob("raft.*")):
        raise ConfigError(
            f"{datadir} holds a Raft log written by an earlier quorum-py (pickled entries, "
            "one password for every member): recreate the network with qnet up or qnet init"
        )
    datadir.mkdir(parents=True, exist_ok=True)
    marker.write_text(RAFT_FORMAT)


def raft_conf(
    bind_address: str,
    datadir: Path,
    snapshots: ClusterSnapshots | None = None,
    election_timeout: float = 0.4,
    **callbacks: Any,
) -> SyncObjConf:
    check_raft_folder(datadir)
    if snapshots is not None:
        callbacks["serializer"] = snapshots.save
        callbacks["deserializer"] = snapshots.load
    return SyncObjConf(
        bindAddress=bind_address,
        # pysyncobj's thread wakes this often when no message arrives, to check its
        # timers (heartbeats, the election deadline). Nothing else waits for it: a
        # command we submit wakes the thread through pysyncobj's pipe notifier (it has
        # one whenever appendEntriesUseBatch is off), and every message wakes it. At
        # 5 ms the wakes were half of an idle network's CPU (three nodes: 12.6% of a
        # core, against 6.6% at 25 ms), and under load each wake takes the GIL from
        # the chain thread; a command still commits in about 1 ms at any period. The
        # timers stay well inside the election timeout (``test_raft_conf``).
        autoTickPeriod=min(0.025, election_timeout / 16),
        # Heartbeats only: a new entry and a new commit index go out at once anyway
        # (appendEntriesUseBatch=False), so a block is proposed and learnt committed
        # without waiting for one. Each encrypted heartbeat costs CPU on every node; at
        # 100 a second they were a twentieth of a busy network's CPU. pysyncobj wants the
        # election timeout above three heartbeats.
        appendEntriesPeriod=min(0.05, election_timeout / 4),
        appendEntriesUseBatch=False,
        raftMinTimeout=election_timeout,
        raftMaxTimeout=3 * election_timeout,
        # A leader that hears from no majority for this long steps down (etcd's
        # CheckQuorum), so a node cut off from the cluster stops reporting itself as the
        # minter; pysyncobj's default keeps it "leader" for 30 s.
        leaderFallbackTimeout=3.0,
        connectionRetryTime=1.0,
        connectionTimeout=max(2.0, 3 * election_timeout),  # pysyncobj: >= raftMaxTimeout
        journalFile=str(datadir / "raft.journal"),
        fullDumpFile=str(datadir / "raft.dump"),
        useFork=False,
        dynamicMembershipChange=True,
        commandsWaitLeader=False,
        **callbacks,
    )
