"""What the Raft cluster agrees on, replicated through pysyncobj's log.

``ClusterState`` is the replicated state machine: the last accepted block, the leader
that announced itself last, and the members with their raft ids. Its ``@replicated``
methods run on every node, in log order, on pysyncobj's thread; they must be
deterministic and cheap, and they tell the engine what changed through a
``ClusterListener`` (which hops to the event loop). Because members and leader live in
the log, every node sees a membership change and knows the enode of a leader it has
never been configured with.

pysyncobj unpickles what arrives on its port: it is always given the cluster password
(its traffic is then encrypted and authenticated) and binds to the configured interface.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pysyncobj import SyncObjConf, SyncObjConsumer, replicated

from quorum_node.errors import ConfigError
from quorum_node.p2p.identity import Enode


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
        recorded keeps its id)."""
        node_id = Enode.parse(enode_text).node_id
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


def raft_conf(
    password: str,
    bind_address: str,
    datadir: Path,
    election_timeout: float = 0.4,
    **callbacks: Any,
) -> SyncObjConf:
    if not password:
        raise ConfigError("the Raft cluster needs a password: pysyncobj unpickles its traffic")
    datadir.mkdir(parents=True, exist_ok=True)
    return SyncObjConf(
        password=password,
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
