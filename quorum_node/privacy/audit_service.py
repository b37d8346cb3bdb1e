"""Signing this member's group roots at every commitment height, reading every member's
commitments back from the manager, and acting on the auditor's alarms.

A commitment height comes every ``interval`` blocks, and at the head once the chain has
been idle for ``idle_seconds`` (so that a quiet network still compares its last roots).
At each height, for every party group this node holds state of, the node asks its own
manager to sign {chain id, group id, block number, block hash, group root, member key}:
the manager holds the signing key, stores the commitment durably and pushes it to the
group's other members only. The manager keeps what the others push too; this service
pages through all of it (``GET /commitments``, from the start after a restart), feeds
``audit.Auditor``, and stores, logs at ERROR and pushes (``eth_subscribe("quorumAudit")``)
each new alarm.

Commitments are read from the node's own manager, which checked each received one's
signature and identity binding; the node does not check them again.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from quorum_node.chain.service import CommittedBlock
from quorum_node.node import Node
from quorum_node.privacy.audit import Alarm, Auditor, GroupAudit
from quorum_node.privacy.audit_store import AlarmStore
from quorum_node.privacy.store import PrivateStore
from quorum_shared.backoff import Backoff
from quorum_shared.commitments import GroupCommitment
from quorum_shared.log_throttle import ThrottledLog
from tx_manager.client import ClientError, CommitmentPage, CommitmentRequest, ManagerRequestFailed

logger = logging.getLogger(__name__)

IDLE_SECONDS = 1.0
#: How long the manager may hold an empty page of commitments (a long poll: it answers
#: as soon as one is stored); also how often the lag check runs while nothing arrives.
POLL_SECONDS = 1.0
PAGE_SIZE = 1000
#: Heights waiting to be signed while the manager does not answer; older ones are
#: dropped first (the next height's commitment says as much about the group).
MAX_PENDING_HEIGHTS = 100
RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 10.0


class CommitmentManager(Protocol):
    """What the audit needs of this node's manager (``tx_manager.client.Q2TClient``)."""

    async def keys(self) -> list[str]: ...

    async def commit(self, items: list[CommitmentRequest]) -> list[GroupCommitment]: ...

    async def commitments(
        self, after: int = 0, limit: int = PAGE_SIZE, wait: float = 0.0
    ) -> CommitmentPage: ...


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


class AuditService:
    def __init__(
        self,
        node: Node,
        store: PrivateStore,
        manager: CommitmentManager,
        alarms: AlarmStore,
        interval: int,
        *,
        idle_seconds: float = IDLE_SECONDS,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self._log = ThrottledLog(logger)
        self._node = node
        self._store = store
        self._manager = manager
        self._alarms = alarms
        self.interval = interval
        self._idle_seconds = idle_seconds
        self._poll_seconds = poll_seconds
        self.auditor = Auditor(interval)
        self.alarm_listeners: list[Callable[[Alarm], None]] = []
        self._pending: deque[tuple[int, bytes]] = deque()
        self._last_enqueued = 0
        self._wake_signer = asyncio.Event()
        self._wake_reader = asyncio.Event()
        self._own_keys: frozenset[bytes] | None = None
        self._cursor = 0
        self._idle_handle: asyncio.TimerHandle | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # --- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        for alarm in self._alarms.load():
            self.auditor.restore(alarm)
        self._tasks.append(asyncio.create_task(self._read_forever(), name="audit-reader"))
        if self.interval > 0:
            self._node.block_listeners.append(self._on_block)
            self._tasks.append(asyncio.create_task(self._sign_forever(), name="audit-signer"))
            self._arm_idle()

    async def stop(self) -> None:
        if self._idle_handle is not None:
            self._idle_handle.cancel()
        if self._on_block in self._node.block_listeners:
            self._node.block_listeners.remove(self._on_block)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._alarms.close()

    # --- commitment heights -------------------------------------------------------------

    def _on_block(self, committed: CommittedBlock) -> None:
        number = committed.block.number
        if number % self.interval == 0:
            self._enqueue(number, bytes(committed.block.hash))
        self._arm_idle()

    def _arm_idle(self) -> None:
        if self._idle_handle is not None:
            self._idle_handle.cancel()
        self._idle_handle = asyncio.get_running_loop().call_later(self._idle_seconds, self._idle)

    def _idle(self) -> None:
        head = self._node.head
        self._enqueue(head.block_number, bytes(head.hash))

    def _enqueue(self, number: int, block_hash: bytes) -> None:
        if number <= self._last_enqueued:
            return  # genesis, or a height already signed
        self._last_enqueued = number
        self._pending.append((number, block_hash))
        while len(self._pending) > MAX_PENDING_HEIGHTS:
            dropped, _ = self._pending.popleft()
            logger.warning("commitment height %d dropped: the manager is not keeping up", dropped)
        self._wake_signer.set()

    async def _sign_forever(self) -> None:
        failing = Backoff(RETRY_SECONDS, MAX_RETRY_SECONDS)
        while True:
            await self._wake_signer.wait()
            self._wake_signer.clear()
            while self._pending:
                number, block_hash = self._pending[0]
                try:
                    await self._sign(number, block_hash)
                except ManagerRequestFailed as exc:
                    if exc.status >= 500:
                        self._log.warning(
                            "unsigned", "commitments at %d not signed yet: %s", number, exc
                        )
                        await asyncio.sleep(failing.next())
                        continue
                    # refused for good (say, a different root than signed before a wipe)
                    logger.error("the manager refused the commitments at %d: %s", number, exc)
                except ClientError as exc:
                    self._log.warning(
                        "unsigned", "commitments at %d not signed yet: %s", number, exc
                    )
                    await asyncio.sleep(failing.next())
                    continue
                failing.reset()
                if self._pending and self._pending[0][0] == number:
                    self._pending.popleft()
                self._wake_reader.set()

    async def _sign(self, number: int, block_hash: bytes) -> None:
        requests = await self._node.executor.run(self._requests_at, number, block_hash)
        if requests:
            await self._manager.commit(requests)

    def _requests_at(self, number: int, block_hash: bytes) -> list[CommitmentRequest]:
        """One request per group this node holds state of after the block (chain thread)."""
        chain_id = self._node.chain_id
        return [
            CommitmentRequest(
                chain_id=chain_id,
                group_id=bytes(group_id),
                block_number=number,
                block_hash=block_hash,
                root=bytes(root),
                members=tuple(self._store.group_members(group_id)),
            )
            for group_id, root in sorted(self._store.roots_after(block_hash).items())
        ]

    # --- reading commitments back, alarms -----------------------------------------------

    async def _own(self) -> frozenset[bytes]:
        if self._own_keys is None:
            self._own_keys = frozenset(base64.b64decode(k) for k in await self._manager.keys())
        return self._own_keys

    async def _read_forever(self) -> None:
        """Read commitments as they arrive: the manager holds an empty page until one is
        stored (``wait``), so an idle node asks about once per ``poll_seconds``. A page
        that comes back empty before that (a manager that does not hold pages, or one
        that failed) is asked again only after the rest of the period."""
        while True:
            asked_at = time.monotonic()
            try:
                read = await self.read_once(wait=self._poll_seconds)
            except ClientError as exc:
                logger.debug("commitments not read: %s", exc)
                read = 0
            except Exception:
                logger.exception("reading commitments failed; trying again")
                read = 0
            if read:
                continue
            remaining = self._poll_seconds - (time.monotonic() - asked_at)
            if remaining > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake_reader.wait(), remaining)
            self._wake_reader.clear()

    async def read_once(self, wait: float = 0.0) -> int:
        """Read one page of commitments (waiting up to ``wait`` seconds for one to be
        stored if none is yet); how many it held."""
        own = await self._own()
        page = await self._manager.commitments(self._cursor, PAGE_SIZE, wait)
        for item in page.items:
            members = [base64.b64decode(key) for key in item.members]
            for alarm in self.auditor.add(item.commitment, members, own & set(members)):
                self._raise(alarm)
        self._cursor = page.next
        for alarm in self.auditor.check_lagging(time.monotonic()):
            self._raise(alarm)
        return len(page.items)

    def _raise(self, alarm: Alarm) -> None:
        self._alarms.save(alarm)
        logger.error(
            "audit alarm: %s in party group 0x%s at height %d (member %s); evidence: %s",
            alarm.kind,
            alarm.group_id.hex(),
            alarm.height,
            _b64(alarm.member),
            json.dumps([c.to_json() for c in alarm.evidence]),
        )
        for listener in self.alarm_listeners:
            try:
                listener(alarm)
            except Exception:
                logger.exception("an audit listener failed")

    # --- what disclosure needs -------------------------------------------------------------

    def signed_at(self, group_id: bytes, height: int) -> list[GroupCommitment] | None:
        """Every member's signed commitment of the group at ``height``, if this node holds
        one from each member and they all name the same root; else None."""
        audit = self.auditor.groups.get(group_id)
        if audit is None:
            return None
        by_member = audit.heights.get(height, {})
        found = []
        for member in audit.members:
            roots = by_member.get(member, {})
            if len(roots) != 1:
                return None
            found.append(next(iter(roots.values())))
        if len({c.claim.root for c in found}) != 1:
            return None
        return found

    def agreed_height(self, group_id: bytes) -> int | None:
        audit = self.auditor.groups.get(group_id)
        return None if audit is None else audit.agreed_height

    # --- status ---------------------------------------------------------------------------

    async def status(self) -> list[dict[str, Any]]:
        """``quorum_auditStatus``: one entry per party group this node belongs to."""
        try:
            own = await self._own()
        except ClientError:
            own = frozenset()

        def groups_at_head() -> dict[bytes, list[str]]:
            head = self._node.head
            return {
                group_id: self._store.group_members(group_id)
                for group_id in self._store.roots_after(head.hash)
            }

        for group_id, members in (await self._node.executor.run(groups_at_head)).items():
            keys = [base64.b64decode(key) for key in members]
            self.auditor.group(group_id, keys, own & set(keys))
        return [self._entry(audit) for _, audit in sorted(self.auditor.groups.items())]

    def _entry(self, audit: GroupAudit) -> dict[str, Any]:
        member_roots = {}
        for member, height in audit.member_heights.items():
            roots = audit.heights.get(height, {}).get(member, {})
            if roots:
                member_roots[_b64(member)] = "0x" + next(iter(roots)).hex()
        return {
            "groupId": "0x" + audit.group_id.hex(),
            "members": [_b64(member) for member in audit.members],
            "status": audit.status(self.interval),
            "agreedHeight": audit.agreed_height,
            "memberHeights": {_b64(m): h for m, h in sorted(audit.member_heights.items())},
            "memberRoots": member_roots,
            "alarms": [
                {k: v for k, v in alarm.to_json().items() if k != "groupId"}
                for alarm in audit.alarms
            ],
        }
