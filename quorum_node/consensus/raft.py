"""Raft ordering on pysyncobj, as GoQuorum's Raft mode orders blocks.

The leader is the minter. When transactions wait it builds a block on its head at most
once per block period, pushes the block body to its peers, and appends a small entry
(number, hash, parent hash) to the Raft log: pysyncobj cannot carry large entries, and
the body is verified against the agreed hash anyway. The replicated state machine
(``BlockTip``) accepts an entry only if it extends the last accepted block, so a block
that an old leader built on a stale head is ignored in the same way on every node and
all nodes stay identical. Each node then brings its chain up to the accepted tip: the
leader commits the writes it kept aside when building, the others import the body they
were pushed or fetch it from a peer, and re-execution checks every state root.

Followers forward transactions to the leader over the signed node-to-node channel, not
through the Raft log. After a leader change every node forwards its pending pool again,
so nothing waiting is stranded with a leader that died.

pysyncobj unpickles what arrives on its port: it is always given the cluster password
(its traffic is then encrypted and authenticated) and binds to the configured interface.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth.abc import BlockAPI, SignedTransactionAPI
from eth_utils import encode_hex
from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, SyncObjConsumer, replicated

from quorum_node.chain.service import CommittedBlock, PreparedBlock
from quorum_node.errors import ChainError, ConfigError, TransactionRejected
from quorum_node.node import Node
from quorum_node.p2p.identity import Enode
from quorum_node.p2p.network import Peer, PeerError, PeerNetwork
from quorum_node.p2p.wire import (
    MAX_BLOCKS_PER_REQUEST,
    PeerStatus,
    WireError,
    decode_block,
    encode_block,
)

logger = logging.getLogger(__name__)

PROPOSAL_TIMEOUT_SECONDS = 5.0
PUSH_TIMEOUT_SECONDS = 3.0
FORWARD_BATCH_DELAY_SECONDS = 0.002
#: After a failed forward, try again this much later with what is still in the pool.
FORWARD_RETRY_SECONDS = 1.0
#: At most this many transactions per block. The gas limit alone would let one block
#: take thousands of transactions, which py-evm executes for tens of seconds: the chain
#: thread is then unavailable to admit transactions (forwards time out), every follower
#: waits that long for the body before it can start its own re-execution, and the GIL
#: starves pysyncobj's thread into elections. Smaller blocks pipeline: followers import
#: block N while the leader builds N+1.
MAX_TRANSACTIONS_PER_BLOCK = 500
BODY_CACHE_LIMIT = 256
MAX_UNANCHORED_BLOCKS = 4096


class BlockTip(SyncObjConsumer):  # type: ignore[misc]
    """The replicated state: the last block the cluster accepted.

    ``propose`` runs on every node, in log order, on pysyncobj's thread. It must be
    deterministic and cheap: it only compares hashes and tells the node.
    """

    def __init__(self, genesis_hash: bytes, on_accept: Callable[[int, bytes], None]) -> None:
        self._on_accept = on_accept  # set before the base __init__: never replicated
        super().__init__()
        self.tip: tuple[int, bytes] = (0, genesis_hash)

    @replicated  # type: ignore[misc]
    def propose(self, number: int, block_hash: bytes, parent_hash: bytes) -> bool:
        tip_number, tip_hash = self.tip
        if number != tip_number + 1 or parent_hash != tip_hash:
            return False
        self.tip = (number, block_hash)
        self._on_accept(number, block_hash)
        return True


@dataclass(frozen=True)
class RaftMember:
    raft_id: int
    enode: Enode


def raft_conf(password: str, bind_address: str, datadir: Path, **callbacks: Any) -> SyncObjConf:
    if not password:
        raise ConfigError("the Raft cluster needs a password: pysyncobj unpickles its traffic")
    datadir.mkdir(parents=True, exist_ok=True)
    return SyncObjConf(
        password=password,
        bindAddress=bind_address,
        autoTickPeriod=0.005,
        appendEntriesPeriod=0.01,
        # Send a new entry, and a new commit index, at once rather than with the next
        # periodic heartbeat: a block is proposed and learnt committed ~10 ms sooner.
        appendEntriesUseBatch=False,
        raftMinTimeout=0.4,
        raftMaxTimeout=1.2,
        # A leader that hears from no majority for this long steps down (etcd's
        # CheckQuorum), so a node cut off from the cluster stops reporting itself as the
        # minter; pysyncobj's default keeps it "leader" for 30 s.
        leaderFallbackTimeout=3.0,
        connectionRetryTime=1.0,
        connectionTimeout=2.0,
        journalFile=str(datadir / "raft.journal"),
        fullDumpFile=str(datadir / "raft.dump"),
        useFork=False,
        dynamicMembershipChange=True,
        commandsWaitLeader=False,
        **callbacks,
    )


class RaftEngine:
    name = "raft"

    def __init__(
        self,
        node: Node,
        network: PeerNetwork,
        members: list[RaftMember],
        self_enode: Enode,
        password: str,
        raft_dir: Path,
        block_period: float = 0.05,
    ) -> None:
        self._node = node
        self._network = network
        self._members = members
        self._self = self_enode
        self._password = password
        self._raft_dir = raft_dir
        self._block_period = block_period
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tip: BlockTip | None = None
        self._raft: SyncObj | None = None
        self._accepted: dict[int, bytes] = {}
        self._bodies: dict[bytes, BlockAPI] = {}
        self._prepared: PreparedBlock | None = None
        self._mint_wake = asyncio.Event()
        self._apply_wake = asyncio.Event()
        self._forward_queue: list[SignedTransactionAPI] = []
        self._forward_scheduled = False
        self._forward_retries: set[asyncio.Task[None]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._last_leader: str | None = None
        self._last_proposal_at = 0.0
        self._halted: str | None = None

    # --- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        others = [
            m.enode.raft_address for m in self._members if m.enode.node_id != self._self.node_id
        ]
        self._tip = BlockTip(self._node.chain.genesis_hash, self._on_accept_threadsafe)
        conf = raft_conf(self._password, self._self.raft_address, self._raft_dir)
        self._raft = SyncObj(self._self.raft_address, others, conf=conf, consumers=[self._tip])
        self._network.handlers = self
        self._network.on_peer_status = self._on_peer_status
        self._tasks = [
            asyncio.create_task(self._mint_forever(), name="raft-minter"),
            asyncio.create_task(self._apply_forever(), name="raft-applier"),
            asyncio.create_task(self._watch_leader(), name="raft-leader-watch"),
        ]

    async def stop(self) -> None:
        for task in [*self._tasks, *self._forward_retries]:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        if self._raft is not None:
            raft = self._raft
            await asyncio.get_running_loop().run_in_executor(None, raft.destroy_synchronous)
            self._raft = None

    # --- roles ---------------------------------------------------------------------

    def _leader_address(self) -> str | None:
        if self._raft is None:
            return None
        leader = self._raft._getLeader()  # noqa: SLF001 - pysyncobj's way to read it
        return None if leader is None else str(getattr(leader, "address", leader))

    def is_leader(self) -> bool:
        return self._raft is not None and self._leader_address() == self._self.raft_address

    def leader_member(self) -> RaftMember | None:
        address = self._leader_address()
        for member in self._members:
            if member.enode.raft_port is not None and member.enode.raft_address == address:
                return member
        return None

    def role(self) -> str:
        return "minter" if self.is_leader() else "verifier"

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
                "role": "minter" if leader is not None and member is leader else "verifier",
                "nodeActive": member.enode.node_id == self._self.node_id
                or member.enode.node_id in live,
            }
            for member in self._members
        ]

    def status(self) -> dict[str, Any]:
        tip = self._tip.tip if self._tip is not None else (0, b"")
        leader = self.leader_member()
        return {
            "engine": self.name,
            "role": self.role(),
            "leader": leader.enode.node_id if leader else None,
            "acceptedTip": {"number": tip[0], "hash": encode_hex(tip[1])},
            "halted": self._halted,
        }

    # --- membership ----------------------------------------------------------------

    async def add_peer(self, enode_text: str) -> int:
        """Add a node to the Raft cluster (GoQuorum's ``raft_addPeer``); its raft id.

        As in GoQuorum, the node must already be on the permissioned-nodes list (append
        it to the file on every node: ids follow the file's order), and is then started
        with that list.
        """
        enode = Enode.parse(enode_text)
        if enode.raft_port is None:
            raise ConfigError("the enode URL needs ?raftport=N")
        if not self._network.permissions.allows(enode.node_id):
            raise ConfigError(
                "node is not on the permissioned-nodes list: add it there on every node first"
            )
        if any(member.enode.node_id == enode.node_id for member in self._members):
            raise ConfigError("node is already a member of the cluster")
        await self._change_membership("add", enode.raft_address)
        raft_id = max((member.raft_id for member in self._members), default=0) + 1
        self._members.append(RaftMember(raft_id, enode))
        self._network.refresh_peers()
        return raft_id

    async def remove_peer(self, raft_id: int) -> None:
        """Remove a node from the Raft cluster (``raft_removePeer``); stop it afterwards."""
        member = next((m for m in self._members if m.raft_id == raft_id), None)
        if member is None:
            raise ConfigError(f"no cluster member has raft id {raft_id}")
        if member.enode.node_id == self._self.node_id:
            raise ConfigError("a node cannot remove itself; ask another member")
        await self._change_membership("remove", member.enode.raft_address)
        self._members.remove(member)

    async def _change_membership(self, change: str, raft_address: str) -> None:
        assert self._raft is not None  # noqa: S101 - started
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
        assert self._loop is not None  # noqa: S101 - started
        future: asyncio.Future[tuple[Any, Any]] = self._loop.create_future()
        loop = self._loop

        def done(result: Any, error: Any) -> None:
            def resolve() -> None:
                if not future.done():
                    future.set_result((result, error))

            loop.call_soon_threadsafe(resolve)

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
            asyncio.ensure_future(self._forward(batch))

    async def _forward(self, transactions: list[SignedTransactionAPI]) -> None:
        leader = self.leader_member()
        if leader is None or leader.enode.node_id == self._self.node_id:
            if self.is_leader():
                self._mint_wake.set()
            # No leader known yet: the leader watch forwards the pool on election, and
            # this retry covers a leader that was elected before the watch looked.
            if not self.is_leader():
                self._retry_forward(transactions)
            return
        peer = self._network.peers.get(leader.enode.node_id)
        if peer is None:
            self._retry_forward(transactions)
            return
        try:
            await self._network.send_transactions(peer, [tx.encode() for tx in transactions])
        except PeerError as exc:
            logger.warning(
                "forwarding %d transactions to the leader failed, retrying in %.0fs: %s",
                len(transactions),
                FORWARD_RETRY_SECONDS,
                exc,
            )
            self._retry_forward(transactions)

    def _retry_forward(self, transactions: list[SignedTransactionAPI]) -> None:
        """Forward again later whatever of ``transactions`` still waits in the pool: a
        forward that failed (the leader busy past the request timeout, or not yet
        connected) would otherwise strand them here until the next leader change."""

        async def later() -> None:
            await asyncio.sleep(FORWARD_RETRY_SECONDS)
            waiting = [tx for tx in transactions if tx.hash in self._node.pool]
            if waiting and not self.is_leader():
                await self._forward(waiting)

        task = asyncio.ensure_future(later())
        self._forward_retries.add(task)
        task.add_done_callback(self._forward_retries.discard)

    async def receive_transactions(self, raw_transactions: list[bytes], sender: str) -> int:
        """Admit what a peer forwarded; bytes that are no transaction refuse the whole
        request (``WireError``), while "already known" and friends are normal."""
        transactions = []
        for index, raw in enumerate(raw_transactions):
            try:
                transactions.append(self._node.decode_raw_transaction(raw))
            except TransactionRejected as exc:
                raise WireError(f"transactions[{index}]: {exc}") from None
        outcomes = await asyncio.gather(
            *(self._node.submit(transaction) for transaction in transactions),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                logger.debug("forwarded transaction not admitted: %s", outcome)
        return sum(1 for outcome in outcomes if not isinstance(outcome, BaseException))

    async def _watch_leader(self) -> None:
        """On every leader change, hand the pending pool to the new leader."""
        while True:
            await asyncio.sleep(0.1)
            address = self._leader_address()
            if address == self._last_leader:
                continue
            self._last_leader = address
            leader = self.leader_member()
            logger.info("raft leader is now %s", leader.enode.node_id[:16] if leader else None)
            if self.is_leader():
                self._mint_wake.set()
            elif leader is not None:
                # Queued transactions too: the nonces they wait for may sit in another
                # node's pool, already on their way to the new leader.
                waiting = self._node.pool.waiting()
                if waiting:
                    await self._forward(waiting)

    # --- minting (leader) ------------------------------------------------------------

    async def seal_now(self) -> CommittedBlock | None:
        if not self.is_leader():
            return None
        return await self._mint_one(allow_empty=True)

    async def _mint_forever(self) -> None:
        while True:
            await self._mint_wake.wait()
            self._mint_wake.clear()
            if not self.is_leader() or self._halted:
                continue
            delay = self._last_proposal_at + self._block_period - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                await self._mint_one(allow_empty=False)
            except Exception:
                logger.exception("minting a block failed")
                await asyncio.sleep(self._block_period)
            if self._node.has_executable_transactions():
                self._mint_wake.set()

    async def _mint_one(self, *, allow_empty: bool) -> CommittedBlock | None:
        assert self._tip is not None and self._raft is not None  # noqa: S101 - started
        await self._caught_up()
        tip_number, tip_hash = self._tip.tip
        if self._node.chain.head.hash != tip_hash:
            return None  # still applying: the applier wakes us when done
        prepared = await self._node.prepare_block(
            allow_empty=allow_empty, max_transactions=MAX_TRANSACTIONS_PER_BLOCK
        )
        if prepared is None:
            return None
        block = prepared.block
        self._last_proposal_at = time.monotonic()
        await self._push_to_majority(block)
        self._prepared = prepared
        accepted = await self._propose(block)
        if not accepted:
            self._prepared = None
            # A proposal that timed out stays in this leader's log and can still commit
            # once a majority is back; keep its body so the block can then be imported
            # here and served to peers (nobody else may hold it).
            self._bodies[bytes(block.hash)] = block
            return None
        # The applier commits the prepared writes; wait for it.
        deadline = time.monotonic() + PROPOSAL_TIMEOUT_SECONDS
        while self._node.chain.head.block_number < block.number and time.monotonic() < deadline:
            self._apply_wake.set()
            await asyncio.sleep(0.002)
        return (
            None
            if self._node.chain.head.hash != block.hash
            else CommittedBlock(block, prepared.built.records)
        )

    async def _push_to_majority(self, block: BlockAPI) -> None:
        """Give the body to enough peers that a majority holds it before it is proposed,
        so a new leader can always find it if this one dies."""
        peers = list(self._network.peers.values())
        needed = (len(self._members) // 2 + 1) - 1
        if not peers or needed <= 0:
            return
        encoded = encode_block(block)
        pushes = [asyncio.create_task(self._network.push_block(peer, encoded)) for peer in peers]
        done = 0
        try:
            for finished in asyncio.as_completed(pushes, timeout=PUSH_TIMEOUT_SECONDS):
                try:
                    await finished
                    done += 1
                except PeerError:
                    continue
                if done >= needed:
                    break
        except TimeoutError:
            pass
        # The remaining pushes go on in the background.

    async def _propose(self, block: BlockAPI) -> bool:
        assert self._tip is not None  # noqa: S101 - started
        try:
            result, error = await self._raft_call(
                self._tip.propose,
                block.number,
                bytes(block.hash),
                bytes(block.header.parent_hash),
                timeout=PROPOSAL_TIMEOUT_SECONDS,
            )
        except TimeoutError:
            logger.warning("proposal of block #%d timed out", block.number)
            return False
        return bool(result) and not error

    # --- applying (every node) ---------------------------------------------------------

    def _on_accept_threadsafe(self, number: int, block_hash: bytes) -> None:
        """Called by pysyncobj's thread for every accepted entry."""
        if self._loop is None:
            return

        def note() -> None:
            self._accepted[number] = block_hash
            self._apply_wake.set()

        self._loop.call_soon_threadsafe(note)

    async def _caught_up(self) -> None:
        while self._tip is not None and self._node.chain.head.block_number < self._tip.tip[0]:
            self._apply_wake.set()
            await asyncio.sleep(0.005)

    async def _apply_forever(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._apply_wake.wait(), 0.2)
            except TimeoutError:
                pass
            self._apply_wake.clear()
            if self._halted:
                continue
            try:
                await self._apply_to_tip()
            except Exception:
                logger.exception("applying accepted blocks failed; retrying")
                await asyncio.sleep(0.5)

    async def _apply_to_tip(self) -> None:
        assert self._tip is not None  # noqa: S101 - started
        target_number, target_hash = self._tip.tip
        chain = self._node.chain
        while chain.head.block_number < target_number:
            number = chain.head.block_number + 1
            expected = target_hash if number == target_number else self._accepted.get(number)
            prepared = self._prepared
            if (
                prepared is not None
                and prepared.block.number == number
                and (expected is None or prepared.block.hash == expected)
                and prepared.block.header.parent_hash == chain.head.hash
            ):
                self._prepared = None
                await self._node.commit_prepared(prepared)
                continue
            body = self._bodies.pop(expected, None) if expected is not None else None
            if body is not None and body.header.parent_hash == chain.head.hash:
                await self._node.import_block(body)
                continue
            blocks = await self._fetch_verified(number, target_number, target_hash)
            for block in blocks:
                await self._node.import_block(block)
        for stale in [n for n in self._accepted if n <= chain.head.block_number]:
            del self._accepted[stale]
        if chain.head.block_number == target_number and chain.head.hash != target_hash:
            self._halted = (
                f"local block #{target_number} {encode_hex(chain.head.hash)} differs from the "
                f"cluster's {encode_hex(target_hash)}"
            )
            logger.error("stopped importing: %s", self._halted)
        self._mint_wake.set()

    async def _fetch_verified(
        self, start: int, target_number: int, target_hash: bytes
    ) -> list[BlockAPI]:
        """Blocks ``start``..``target_number`` from a peer, checked to chain from our head
        to the agreed hashes before any is imported (import then re-executes each)."""
        errors: list[str] = []
        for peer in sorted(self._network.peers.values(), key=lambda p: not p.live):
            try:
                blocks = await self._fetch_chain(peer, start, target_number, target_hash)
            except (PeerError, WireError) as exc:
                errors.append(str(exc))
                continue
            if blocks:
                return blocks
            errors.append(f"{peer.enode.host}:{peer.enode.p2p_port} sent blocks that do not chain")
        raise ChainError(f"no peer could supply block #{start}: {'; '.join(errors) or 'no peers'}")

    async def _fetch_chain(
        self, peer: Peer, start: int, target_number: int, target_hash: bytes
    ) -> list[BlockAPI]:
        blocks: list[BlockAPI] = []
        parent = self._node.chain.head.hash
        number = start
        while number <= target_number:
            count = min(MAX_BLOCKS_PER_REQUEST, target_number - number + 1)
            chunk = [
                decode_block(item) for item in await self._network.fetch_blocks(peer, number, count)
            ]
            if not chunk:
                return []
            for block in chunk:
                known = self._accepted.get(block.number)
                if block.header.parent_hash != parent or (
                    known is not None and block.hash != known
                ):
                    return []
                blocks.append(block)
                parent = block.hash
                number += 1
            if len(blocks) >= MAX_UNANCHORED_BLOCKS and blocks[-1].number in self._accepted:
                return blocks  # anchored to an agreed hash: import these, then go on
        return blocks if blocks and blocks[-1].hash == target_hash else []

    # --- peer handlers ---------------------------------------------------------------

    def peer_status(self) -> PeerStatus:
        head = self._node.chain.head
        return PeerStatus(
            version=1,
            node_id=self._self.node_id,
            chain_id=self._node.chain.chain_id,
            genesis_hash=encode_hex(self._node.chain.genesis_hash),
            head_number=head.block_number,
            head_hash=encode_hex(head.hash),
        )

    async def receive_block(self, encoded_block: bytes, sender: str) -> None:
        block = decode_block(encoded_block)
        if len(self._bodies) >= BODY_CACHE_LIMIT:
            self._bodies.pop(next(iter(self._bodies)))
        self._bodies[bytes(block.hash)] = block
        self._apply_wake.set()

    async def blocks_from(self, start: int, count: int) -> list[bytes]:
        def read() -> list[bytes]:
            encoded = []
            for number in range(start, start + count):
                header = self._node.chain.header_by_number(number)
                if header is None:
                    break
                encoded.append(encode_block(self._node.chain.block_of(header)))
            return encoded

        return await self._node.executor.run(read)

    async def _on_peer_status(self, peer: Peer) -> None:
        if (
            self._tip is not None
            and peer.status is not None
            and peer.status.head_number > self._node.chain.head.block_number
        ):
            self._apply_wake.set()
