"""Raft ordering on pysyncobj, as GoQuorum's Raft mode orders blocks.

The leader is the minter. When transactions wait it builds a block on its head at most
once per block period, pushes the body to its peers, and appends a small entry (number,
hash, parent hash) to the Raft log: pysyncobj cannot carry large entries, and the body
is verified against the agreed hash anyway. The replicated state (``raft_state``)
accepts an entry only if it extends the last accepted block, so every node stays
identical; each node then brings its chain up to the accepted tip (``raft_apply``).

Followers forward transactions to the leader over the signed node-to-node channel, not
through the Raft log. A node learns who leads from the log itself: a new leader
announces itself there, every node applies the announcement (and every membership
change) in the same order, and then forwards its pending pool to the new leader, so
nothing waiting is stranded with a leader that died. Nothing here polls: pysyncobj's
callbacks, the applier's progress and the pool wake the tasks that wait on them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth.abc import SignedTransactionAPI
from eth_utils import encode_hex
from pysyncobj import FAIL_REASON, SyncObj
from pysyncobj.syncobj import _RAFT_STATE

from quorum_node.chain.service import CommittedBlock
from quorum_node.consensus.base import ForwardingPool, ReplicatedChain, wait_or_timeout
from quorum_node.consensus.raft_apply import BlockApplier
from quorum_node.consensus.raft_link import LocalIdentity
from quorum_node.consensus.raft_state import ClusterSnapshots, ClusterState, RaftMember, raft_conf
from quorum_node.consensus.raft_transport import RaftTransport
from quorum_node.consensus.raft_wire import install as install_raft_codec
from quorum_node.consensus.raft_wire import replicated_signatures
from quorum_node.errors import ChainError, ConfigError, TransactionRejected
from quorum_node.p2p.identity import Enode
from quorum_node.p2p.network import Peer, PeerNetwork, PeerUnreachable
from quorum_node.p2p.wire import PeerStatus, WireError
from quorum_shared.backoff import Backoff
from quorum_shared.log_throttle import ThrottledLog

logger = logging.getLogger(__name__)

PROPOSAL_TIMEOUT_SECONDS = 5.0
PUSH_TIMEOUT_SECONDS = 3.0
FORWARD_BATCH_DELAY_SECONDS = 0.002
#: After a failed forward, try again this much later with what is still in the pool,
#: twice as late after each further failure, up to ``MAX_RETRY_SECONDS``.
FORWARD_RETRY_SECONDS = 0.5
#: After a failed attempt to apply accepted blocks (no peer had them yet), likewise.
APPLY_RETRY_SECONDS = 0.25
MAX_RETRY_SECONDS = 5.0
#: At most this long between tries while transactions wait that no block could take.
MAX_STALL_SECONDS = 2.0
#: At most this many transactions per block. The gas limit alone would let one block
#: take thousands of transactions, which py-evm executes for tens of seconds: the chain
#: thread is then unavailable to admit transactions (forwards time out), every follower
#: waits that long for the body before it can start its own re-execution, and the GIL
#: starves pysyncobj's thread into elections. Smaller blocks pipeline: followers import
#: block N while the leader builds N+1.
MAX_TRANSACTIONS_PER_BLOCK = 500


class RaftEngine:
    name = "raft"

    def __init__(
        self,
        chain: ReplicatedChain,
        pool: ForwardingPool,
        network: PeerNetwork,
        members: list[RaftMember],
        self_enode: Enode,
        raft_dir: Path,
        block_period: float = 0.05,
        election_timeout: float = 0.4,
    ) -> None:
        self._chain = chain
        self._pool = pool
        self._network = network
        self._initial_members = tuple((m.raft_id, str(m.enode)) for m in members)
        self._self = self_enode
        self._raft_dir = raft_dir
        self._block_period = block_period
        self._election_timeout = election_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._cluster: ClusterState | None = None
        self._raft: SyncObj | None = None
        self._applier = BlockApplier(chain, network)
        self._leading = False
        self._election_running = False
        self._mint_wake = asyncio.Event()
        self._apply_wake = asyncio.Event()
        self._forward_queue: list[SignedTransactionAPI] = []
        self._to_forward_again: dict[bytes, SignedTransactionAPI] = {}
        self._forward_retrier: asyncio.Future[None] | None = None
        self._forward_backoff = Backoff(FORWARD_RETRY_SECONDS, MAX_RETRY_SECONDS)
        self._log = ThrottledLog(logger)
        self._forward_scheduled = False
        self._background: set[asyncio.Task[None]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._last_proposal_at = 0.0
        #: Told the seconds from proposing a block to its being the head here (the
        #: leader's view of a Raft commit), for the node's metrics.
        self.commit_observer: Callable[[float], None] | None = None
        #: Told (node id, kind) when a member sends what it must not (``raft_transport``),
        #: on pysyncobj's thread, for the node's metrics.
        self.misbehaviour_observer: Callable[[str, str], None] | None = None
        self._members_cache: tuple[tuple[tuple[int, str], ...], list[RaftMember]] = ((), [])
        #: When each member's last message arrived (Raft address -> monotonic time),
        #: written by the transport on pysyncobj's thread.
        self._heard: dict[str, float] = {}
        #: A follower trusts that it knows the committed head while it heard from the
        #: leader this recently (a leader: from a majority): four heartbeats (set at start).
        self._lease_seconds = 0.0

    # --- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        others = [
            Enode.parse(text).raft_address
            for _, text in self._initial_members
            if Enode.parse(text).node_id != self._self.node_id
        ]
        self._cluster = ClusterState(
            self._chain.genesis_hash, self._initial_members, _ToLoop(self, self._loop)
        )
        conf = raft_conf(
            self._self.raft_address,
            self._raft_dir,
            ClusterSnapshots(self._cluster),
            election_timeout=self._election_timeout,
            onStateChanged=self._on_state_changed_threadsafe,
        )
        self._lease_seconds = 4 * conf.appendEntriesPeriod
        install_raft_codec()
        transport = functools.partial(
            RaftTransport,
            local=LocalIdentity(self._network.node_key, self._chain.genesis_hash),
            directory=self,
            signatures=replicated_signatures(ClusterState),
            observer=self._peer_misbehaved,
            heard=self._heard,
        )
        self._raft = SyncObj(
            self._self.raft_address,
            others,
            conf=conf,
            consumers=[self._cluster],
            transportClass=transport,
        )
        self._network.handlers = self
        self._network.on_peer_status = self._on_peer_status
        self._tasks = [
            asyncio.create_task(self._mint_forever(), name="raft-minter"),
            asyncio.create_task(self._apply_forever(), name="raft-applier"),
        ]

    async def stop(self) -> None:
        for task in [*self._tasks, *self._background]:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                logger.exception("a raft task failed before it was stopped")
        if self._raft is not None:
            raft = self._raft
            await asyncio.get_running_loop().run_in_executor(None, raft.destroy_synchronous)
            self._raft = None

    def _spawn(self, coroutine: Any) -> None:
        """Run ``coroutine`` in the background, kept until done, cancelled on stop."""
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- roles and members, from the replicated state ----------------------------------

    def members(self) -> list[RaftMember]:
        """The cluster's members as the log says (every node sees the same list)."""
        recorded = self._cluster.members if self._cluster is not None else self._initial_members
        cached_for, parsed = self._members_cache
        if cached_for is not recorded:
            parsed = [RaftMember(raft_id, Enode.parse(text)) for raft_id, text in recorded]
            self._members_cache = (recorded, parsed)
        return parsed

    def is_leader(self) -> bool:
        return self._raft is not None and self._leading

    def leader_member(self) -> RaftMember | None:
        """This node while it leads; otherwise the leader the log announced last, unless
        this node has seen that leader go (it stood for election itself, or it was that
        leader and stepped down): then no leader is known until the next announcement."""
        if self.is_leader():
            address: str | None = self._self.raft_address
        elif self._election_running or self._cluster is None:
            address = None
        else:
            address = self._cluster.leader
            if address == self._self.raft_address:
                address = None
        for member in self.members():
            if member.enode.raft_port is not None and member.enode.raft_address == address:
                return member
        return None

    def committed_head(self) -> int | None:
        """The tip the cluster accepted, while this node can trust that it knows it: it
        has caught up with a leader since it started (pysyncobj's ``isReady``) and has
        heard from that leader (or, leading, from a majority) within the lease; else
        None. The node waits for its head to reach this before it answers a send."""
        raft, cluster = self._raft, self._cluster
        if raft is None or cluster is None or not raft.isReady():
            return None
        now = time.monotonic()
        if self.is_leader():
            voices = 1 + sum(
                1
                for member in self.members()
                if member.enode.node_id != self._self.node_id
                and now - self._heard.get(member.enode.raft_address, -1e9) < self._lease_seconds
            )
            if voices * 2 <= len(self.members()):
                return None
        else:
            leader = raft._getLeader()  # noqa: SLF001 - pysyncobj's view of its leader
            if leader is None or now - self._heard.get(leader.address, -1e9) >= self._lease_seconds:
                return None
        return int(cluster.tip[0])

    def role(self) -> str:
        return "minter" if self.is_leader() else "verifier"

    def term(self) -> int | None:
        """The current Raft term (pysyncobj's status), None before the engine started."""
        raft = self._raft
        if raft is None:
            return None
        term = getattr(raft, "raftCurrentTerm", None)
        return term if isinstance(term, int) else None

    def cluster(self) -> list[dict[str, Any]]:
        leader = self.leader_member()
        live = {peer.enode.node_id for peer in self._network.live_peers()}
        return [
            {
                "raftId": member.raft_id,
                "nodeId": member.enode.node_id,
                "p2pPort": member.enode.p2p_port,
                "raftPort": member.enode.raft_port,
                "hostname": member.enode.host,
                "role": "minter" if leader is not None and member == leader else "verifier",
                "nodeActive": member.enode.node_id == self._self.node_id
                or member.enode.node_id in live,
            }
            for member in self.members()
        ]

    def status(self) -> dict[str, Any]:
        tip = self._cluster.tip if self._cluster is not None else (0, b"")
        leader = self.leader_member()
        return {
            "engine": self.name,
            "role": self.role(),
            "leader": leader.enode.node_id if leader else None,
            "acceptedTip": {"number": tip[0], "hash": encode_hex(tip[1])},
            "halted": self._applier.halted,
        }

    def _on_state_changed_threadsafe(self, old_state: int, new_state: int) -> None:
        """pysyncobj's thread: this node's own Raft role changed."""
        if self._loop is not None:
            _call_soon(self._loop, self._role_changed, new_state)

    def _role_changed(self, state: int) -> None:
        leading = state == _RAFT_STATE.LEADER
        self._leading = leading
        if state == _RAFT_STATE.CANDIDATE:
            self._election_running = True  # the leader went silent: none is known now
        if leading:
            self._election_running = False
            logger.info("this node leads the raft cluster")
            self._mint_wake.set()
            self._spawn(self._announce_leadership())

    async def _announce_leadership(self) -> None:
        if self._cluster is None:
            return
        try:
            await self._raft_call(
                self._cluster.announce_leader,
                self._self.raft_address,
                timeout=PROPOSAL_TIMEOUT_SECONDS,
            )
        except TimeoutError:
            logger.info("the leadership announcement did not commit (leadership lost?)")

    def leader_announced(self, raft_address: str) -> None:
        """The log says ``raft_address`` leads: hand it what waits here."""
        self._election_running = False
        leader = self.leader_member()
        logger.info("raft leader is now %s", leader.enode.node_id[:16] if leader else raft_address)
        if self.is_leader():
            self._mint_wake.set()
            if raft_address != self._self.raft_address:
                # An announcement a former leader proposed committed after this node's
                # own: say it again, or every other node keeps naming that former
                # leader (seen after a partition healed: two leaders a term apart).
                self._spawn(self._announce_leadership())
        elif leader is not None:
            # Queued transactions too: the nonces they wait for may sit in another
            # node's pool, already on their way to the new leader.
            waiting = self._pool.waiting_transactions()
            if waiting:
                self._spawn(self._forward(waiting))

    def members_changed(self) -> None:
        self._network.refresh_peers()

    # --- who is who, for the Raft transport (pysyncobj's thread) ----------------------

    def _known_enodes(self) -> list[Enode]:
        """Members as the log says, then the permissioned list (a node being added is
        there before the log records it); only nodes the list allows."""
        permissions = self._network.permissions
        enodes = [member.enode for member in self.members()] + permissions.enodes()
        return [
            enode
            for enode in enodes
            if enode.raft_port is not None and permissions.allows(enode.node_id)
        ]

    def node_id_at(self, raft_address: str) -> str | None:
        for enode in self._known_enodes():
            if enode.raft_address == raft_address:
                return enode.node_id
        return None

    def raft_address_of(self, node_id: str) -> str | None:
        for enode in self._known_enodes():
            if enode.node_id == node_id:
                return enode.raft_address
        return None

    def _peer_misbehaved(self, node_id: str, kind: str) -> None:
        if self.misbehaviour_observer is not None:
            self.misbehaviour_observer(node_id, kind)

    # --- membership ----------------------------------------------------------------

    async def add_peer(self, enode_text: str) -> int:
        """Add a node to the Raft cluster (GoQuorum's ``raft_addPeer``); its raft id.

        As in GoQuorum, the node must already be on the permissioned-nodes list (append
        it to the file on every node), and is then started with that list. The member
        and its id are recorded in the Raft log, so every node sees them.
        """
        enode = Enode.parse(enode_text)
        if enode.raft_port is None:
            raise ConfigError("the enode URL needs ?raftport=N")
        if not self._network.permissions.allows(enode.node_id):
            raise ConfigError(
                "node is not on the permissioned-nodes list: add it there on every node first"
            )
        if any(member.enode.node_id == enode.node_id for member in self.members()):
            raise ConfigError("node is already a member of the cluster")
        if self._cluster is None:
            raise ChainError("raft is not started")
        await self._change_membership("add", enode.raft_address)
        raft_id, error = await self._raft_call(
            self._cluster.add_member, str(enode), timeout=PROPOSAL_TIMEOUT_SECONDS
        )
        if error != FAIL_REASON.SUCCESS:
            raise ChainError(f"the cluster did not record the new member: code {error}")
        return int(raft_id)

    async def remove_peer(self, raft_id: int) -> None:
        """Remove a node from the Raft cluster (``raft_removePeer``); stop it afterwards."""
        member = next((m for m in self.members() if m.raft_id == raft_id), None)
        if member is None:
            raise ConfigError(f"no cluster member has raft id {raft_id}")
        if member.enode.node_id == self._self.node_id:
            raise ConfigError("a node cannot remove itself; ask another member")
        if self._cluster is None:
            raise ChainError("raft is not started")
        await self._change_membership("remove", member.enode.raft_address)
        _removed, error = await self._raft_call(
            self._cluster.remove_member, raft_id, timeout=PROPOSAL_TIMEOUT_SECONDS
        )
        if error != FAIL_REASON.SUCCESS:
            raise ChainError(f"the cluster did not record the removal: code {error}")

    async def _change_membership(self, change: str, raft_address: str) -> None:
        if self._raft is None:
            raise ChainError("raft is not started")
        apply = self._raft.addNodeToCluster if change == "add" else self._raft.removeNodeFromCluster
        try:
            _result, error = await self._raft_call(
                apply, raft_address, timeout=PROPOSAL_TIMEOUT_SECONDS * 2
            )
        except TimeoutError:
            raise ChainError(
                f"the cluster did not commit the membership change ({change})"
            ) from None
        if error != FAIL_REASON.SUCCESS:
            raise ChainError(f"the cluster refused the membership change ({change}): code {error}")

    async def _raft_call(
        self, apply: Callable[..., Any], *args: Any, timeout: float
    ) -> tuple[Any, Any]:
        """Run a pysyncobj command and await its (result, error) on the event loop; the
        callback comes from pysyncobj's thread. Raises TimeoutError after ``timeout``."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[Any, Any]] = loop.create_future()

        def done(result: Any, error: Any) -> None:
            def resolve() -> None:
                if not future.done():
                    future.set_result((result, error))

            _call_soon(loop, resolve)

        apply(*args, callback=done)
        return await asyncio.wait_for(future, timeout)

    # --- transactions --------------------------------------------------------------

    def transaction_added(self, transaction: SignedTransactionAPI) -> None:
        if self.is_leader():
            self._mint_wake.set()
            return
        self._forward_queue.append(transaction)
        if not self._forward_scheduled and self._loop is not None:
            self._forward_scheduled = True
            self._loop.call_later(FORWARD_BATCH_DELAY_SECONDS, self._schedule_forward)

    def _schedule_forward(self) -> None:
        self._forward_scheduled = False
        batch, self._forward_queue = self._forward_queue, []
        if batch:
            self._spawn(self._forward(batch))

    async def _forward(self, transactions: list[SignedTransactionAPI]) -> None:
        if self.is_leader():
            self._mint_wake.set()
            return
        leader = self.leader_member()
        peer = None if leader is None else self._network.peers.get(leader.enode.node_id)
        if peer is None:
            # No leader known yet: its announcement forwards the pool when it commits,
            # and this retry covers one that committed before these arrived.
            self._retry_forward(transactions)
            return
        try:
            await self._network.send_transactions(peer, [tx.encode() for tx in transactions])
        except PeerUnreachable as exc:
            self._log.warning(
                "forward",
                "forwarding %d transactions to the leader failed, retrying: %s",
                len(transactions),
                exc,
            )
            self._retry_forward(transactions)
            return
        self._forward_backoff.reset()

    def _retry_forward(self, transactions: list[SignedTransactionAPI]) -> None:
        """Forward again later whatever of ``transactions`` still waits in the pool: a
        forward that failed (the leader busy past the request timeout, or not yet
        connected) would otherwise strand them here until the next leader change. One
        task retries everything that failed, waiting longer after each failure."""
        for transaction in transactions:
            self._to_forward_again[bytes(transaction.hash)] = transaction
        if self._forward_retrier is None or self._forward_retrier.done():
            self._forward_retrier = asyncio.ensure_future(self._forward_again())
            self._background.add(self._forward_retrier)
            self._forward_retrier.add_done_callback(self._background.discard)

    async def _forward_again(self) -> None:
        while self._to_forward_again:
            await asyncio.sleep(self._forward_backoff.next())
            batch, self._to_forward_again = self._to_forward_again, {}
            waiting = [tx for tx in batch.values() if self._pool.is_waiting(tx.hash)]
            if waiting:
                await self._forward(waiting)

    async def receive_transactions(self, raw_transactions: list[bytes], sender: str) -> int:
        """Admit what a peer forwarded; bytes that are no transaction refuse the whole
        request (``WireError``), while "already known" and friends are normal."""
        try:
            return await self._pool.admit_forwarded(raw_transactions)
        except TransactionRejected as exc:
            raise WireError(str(exc)) from None

    # --- minting (leader) ------------------------------------------------------------

    async def seal_now(self) -> CommittedBlock | None:
        if not self.is_leader():
            return None
        return await self._mint_one(allow_empty=True)

    async def _mint_forever(self) -> None:
        stalled = Backoff(self._block_period, MAX_STALL_SECONDS)
        while True:
            await self._mint_wake.wait()
            self._mint_wake.clear()
            if not self.is_leader() or self._applier.halted:
                continue
            delay = self._last_proposal_at + self._block_period - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            minted = None
            try:
                minted = await self._mint_one(allow_empty=False)
            except Exception:
                logger.exception("minting a block failed")
            if minted is not None:
                stalled.reset()
            elif self._pool.has_executable_transactions():
                # Transactions wait that no block took (their manager does not answer, or
                # the head moved): try again later, or when something new arrives.
                await wait_or_timeout(self._mint_wake, stalled.next())
            if self._pool.has_executable_transactions():
                self._mint_wake.set()

    async def _mint_one(self, *, allow_empty: bool) -> CommittedBlock | None:
        cluster = self._cluster
        if cluster is None:
            return None
        try:
            await asyncio.wait_for(self._caught_up(), PROPOSAL_TIMEOUT_SECONDS)
        except TimeoutError:
            self._log.warning("mint", "not minting: still applying accepted blocks")
            return None
        tip_number, tip_hash = cluster.tip
        if self._chain.head.hash != tip_hash:
            return None  # the tip moved meanwhile: the applier wakes us when done
        prepared = await self._chain.prepare_block(
            allow_empty=allow_empty, max_transactions=MAX_TRANSACTIONS_PER_BLOCK
        )
        if prepared is None:
            return None
        block = prepared.block
        self._last_proposal_at = time.monotonic()
        await self._push_to_majority(prepared.encoded)
        self._applier.prepared = prepared
        proposed_at = time.monotonic()
        if not await self._propose(block.number, bytes(block.hash), block.header.parent_hash):
            self._applier.prepared = None
            # A proposal that timed out stays in this leader's log and can still commit
            # once a majority is back; keep its body so the block can then be imported
            # here and served to peers (nobody else may hold it).
            self._applier.add_body(prepared.encoded)
            return None
        try:
            await asyncio.wait_for(
                self._applier.wait_for_head(block.number), PROPOSAL_TIMEOUT_SECONDS
            )
        except TimeoutError:
            return None
        if self._chain.head.hash != block.hash:
            return None
        if self.commit_observer is not None:
            self.commit_observer(time.monotonic() - proposed_at)
        return CommittedBlock(block, prepared.built.records)

    async def _caught_up(self) -> None:
        """Until the chain holds every block the cluster accepted."""
        if self._cluster is None or self._chain.head.block_number >= self._cluster.tip[0]:
            return
        self._apply_wake.set()
        await self._applier.wait_for_head(self._cluster.tip[0])

    async def _push_to_majority(self, encoded_block: bytes) -> None:
        """Give the body to enough peers that a majority holds it before it is proposed,
        so a new leader can always find it if this one dies."""
        peers = list(self._network.peers.values())
        needed = (len(self.members()) // 2 + 1) - 1
        if not peers or needed <= 0:
            return
        pushes = [
            asyncio.create_task(self._network.push_block(peer, encoded_block)) for peer in peers
        ]
        for push in pushes:
            self._background.add(push)  # the rest go on after a majority answered
            push.add_done_callback(self._background.discard)
        done = 0
        try:
            for finished in asyncio.as_completed(pushes, timeout=PUSH_TIMEOUT_SECONDS):
                try:
                    await finished
                    done += 1
                except PeerUnreachable:
                    continue
                if done >= needed:
                    break
        except TimeoutError:
            pass

    async def _propose(self, number: int, block_hash: bytes, parent_hash: bytes) -> bool:
        if self._cluster is None:
            return False
        try:
            result, error = await self._raft_call(
                self._cluster.propose,
                number,
                block_hash,
                bytes(parent_hash),
                timeout=PROPOSAL_TIMEOUT_SECONDS,
            )
        except TimeoutError:
            self._log.warning("proposal", "proposal of block #%d timed out", number)
            return False
        return bool(result) and not error

    # --- applying (every node) ---------------------------------------------------------

    def block_accepted(self, number: int, block_hash: bytes) -> None:
        self._applier.accept(number, block_hash)
        self._apply_wake.set()

    async def _apply_forever(self) -> None:
        loop = asyncio.get_running_loop()
        failing = Backoff(APPLY_RETRY_SECONDS, MAX_RETRY_SECONDS)
        while True:
            await self._apply_wake.wait()
            self._apply_wake.clear()
            if self._cluster is None or self._applier.halted:
                continue
            target_number, target_hash = self._cluster.tip
            head_before = self._chain.head.hash
            try:
                await self._applier.apply_to(target_number, target_hash)
            except Exception as exc:
                wait = failing.next()
                if not isinstance(exc, ChainError):
                    logger.exception("applying accepted blocks failed, retrying in %.1fs", wait)
                else:
                    self._log.warning("apply", "applying accepted blocks failed, retrying: %s", exc)
                loop.call_later(wait, self._apply_wake.set)
                continue
            failing.reset()
            if self._chain.head.hash != head_before and self.is_leader():
                self._mint_wake.set()  # the head moved: the next block can build on it

    # --- peer handlers ---------------------------------------------------------------

    def peer_status(self) -> PeerStatus:
        head = self._chain.head
        return PeerStatus(
            version=1,
            node_id=self._self.node_id,
            chain_id=self._chain.chain_id,
            genesis_hash=encode_hex(self._chain.genesis_hash),
            head_number=head.block_number,
            head_hash=encode_hex(head.hash),
        )

    async def receive_block(self, encoded_block: bytes, sender: str) -> None:
        """A leader pushed a body it is about to propose: keep it (decoded later, on the
        chain thread) and let the applier look."""
        try:
            self._applier.add_body(encoded_block)
        except ChainError as exc:
            raise WireError(str(exc)) from None
        self._apply_wake.set()

    async def blocks_from(self, start: int, count: int) -> list[bytes]:
        return await self._chain.encoded_blocks(start, count)

    async def _on_peer_status(self, peer: Peer) -> None:
        if (
            self._cluster is not None
            and peer.status is not None
            and peer.status.head_number > self._chain.head.block_number
        ):
            self._apply_wake.set()


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any) -> None:
    """Hand ``callback`` to the event loop from another thread; a loop already closed
    (the node is stopping) has nobody left to tell."""
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:
        pass


class _ToLoop:
    """The engine as pysyncobj's thread reaches it: every call hops to the event loop."""

    def __init__(self, engine: RaftEngine, loop: asyncio.AbstractEventLoop) -> None:
        self._engine = engine
        self._loop = loop

    def block_accepted(self, number: int, block_hash: bytes) -> None:
        _call_soon(self._loop, self._engine.block_accepted, number, block_hash)

    def leader_announced(self, raft_address: str) -> None:
        _call_soon(self._loop, self._engine.leader_announced, raft_address)

    def members_changed(self) -> None:
        _call_soon(self._loop, self._engine.members_changed)
