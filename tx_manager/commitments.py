"""Signed group-root commitments: sign for the local node, store, push to the other
members, accept theirs. Independent of HTTP; ``TransactionManager`` wires one in.

The main flow of a commit reads top to bottom in ``CommitmentService.commit``: check the
group, sign once per local member key (never a second root for one height), store
durably, answer, and only then hand the pushes to ``CommitmentPusher``, which delivers
them in the background and retries until each member's manager acknowledged.

The main flow of a received push reads top to bottom in ``accept``: every check on every
item (the group, the receiver, the binding tag, the signature), then one atomic store.
A refusal stores nothing.

What a commitment proves is in ``quorum_shared.commitments``; this module only makes
sure that what it stores as a member's was vouched for by that member's manager key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict, deque
from collections.abc import Callable
from functools import partial
from typing import Protocol, TypeVar

from quorum_shared import commitments
from quorum_shared.commitments import GroupCommitment
from quorum_shared.log_throttle import ThrottledLog
from tx_manager.commitment_messages import (
    MAX_COMMITMENTS,
    CommitmentPage,
    CommitmentPush,
    CommitmentPushItem,
    CommitmentRequest,
    StoredCommitment,
    member_keys,
)
from tx_manager.crypto_pool import CryptoPool
from tx_manager.enclave import Enclave
from tx_manager.errors import (
    BadRequest,
    BindingRejected,
    PeerRequestFailed,
    RequestTooLarge,
)
from tx_manager.fields import privacy_group_id
from tx_manager.payload import b64encode
from tx_manager.store import Store

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRY_INTERVAL = 1.0
#: The longest a reader may ask an empty page to wait for new commitments.
MAX_PAGE_WAIT_SECONDS = 30.0
MAX_QUEUED_PUSHES = 10_000
# Above this many items, signing or verifying (about 45 and 150 µs each) leaves the loop.
_OFFLOAD_ITEMS = 16
# Bytes one pushed item takes in JSON (a commitment, its tag and a few member keys).
_ITEM_BYTES_ESTIMATE = 900


_Push = tuple[bytes, CommitmentPushItem]
"""A commitment on its way to the manager of one receiver key."""


class CommitmentPeers(Protocol):
    """How a pusher reaches another manager's P2P API (``PeerClient``)."""

    async def push_commitments(self, url: str, push: CommitmentPush) -> int: ...


class KeyRoutes(Protocol):
    """Where a manager key's validated P2P URL is (``PartyRegistry``)."""

    def url_for(self, key: bytes) -> str | None: ...


def _group_keys(members: tuple[str, ...]) -> tuple[tuple[bytes, ...], tuple[str, ...]]:
    """The group's raw keys, sorted and unique, and the same as base64 (as stored)."""
    keys = tuple(sorted(set(member_keys(members))))
    return keys, tuple(b64encode(key) for key in keys)


def _check_group(group_id: bytes, keys: tuple[bytes, ...]) -> None:
    expected = privacy_group_id(keys)
    if group_id != expected:
        raise BadRequest(
            f"groupId 0x{group_id.hex()} is not the id of its members (0x{expected.hex()})"
        )


class CommitmentService:
    def __init__(
        self,
        enclave: Enclave,
        store: Store,
        routes: KeyRoutes,
        peers: CommitmentPeers,
        crypto: CryptoPool,
        max_push_bytes: int = 1024 * 1024,
    ) -> None:
        self.enclave = enclave
        self.store = store
        self._crypto = crypto
        self.pusher = CommitmentPusher(routes, peers, max_push_bytes)
        #: Set (and replaced) whenever commitments are stored, for readers that wait.
        self._stored = asyncio.Event()

    async def close(self) -> None:
        await self.pusher.close()

    # -- Q2T ------------------------------------------------------------------------
    async def commit(self, requests: tuple[CommitmentRequest, ...]) -> list[GroupCommitment]:
        """Sign each request for every local member key, durably; the signed commitments.

        Refuses the whole request, storing nothing, with 400 if a group id is not its
        members' or this manager holds no key of a group, and with 409
        (``CommitmentConflict``, checked by the store in the same transaction as the
        insert, so two concurrent commits cannot both win) if it already signed another
        root for the same group, height and member. Signing a root again answers the
        stored commitment. Pushes start only after the commitments are durable.
        """
        if len(requests) > MAX_COMMITMENTS:
            raise RequestTooLarge(f"at most {MAX_COMMITMENTS} commitments in one request")
        groups = [_group_keys(request.members) for request in requests]
        wanted: list[tuple[CommitmentRequest, bytes, tuple[str, ...]]] = []
        for request, (keys, members) in zip(requests, groups, strict=True):
            _check_group(request.group_id, keys)
            local = [key for key in keys if self.enclave.is_local(key)]
            if not local:
                raise BadRequest(f"this manager holds no key of group 0x{request.group_id.hex()}")
            wanted.extend((request, key, members) for key in local)

        claims = [(request.claim_for(member), members) for request, member, members in wanted]
        records, pushes = await self._crypto_work(len(claims), partial(self._sign, claims))
        stored = await self.store.save_commitments(records)  # 409 on a second root
        self._announce_stored()
        self.pusher.enqueue(pushes)
        return [record.commitment for record in stored]

    def _sign(
        self, claims: list[tuple[commitments.CommitmentClaim, tuple[str, ...]]]
    ) -> tuple[list[StoredCommitment], list[_Push]]:
        """Own records to store and their pushes (may run on a crypto thread).

        Ed25519 is deterministic, so signing a stored claim again gives the stored
        commitment, and its pushes are the same as the first time.
        """
        records = [
            StoredCommitment(0, True, members, self.enclave.sign_claim(claim))
            for claim, members in claims
        ]
        return records, self._pushes(records)

    def _pushes(self, records: list[StoredCommitment]) -> list[_Push]:
        """(receiver key, item) for every other member of each commitment's group."""
        pushes: list[_Push] = []
        for record in records:
            signed = record.commitment
            for key in member_keys(record.members):
                if self.enclave.is_local(key):
                    continue
                tag = self.enclave.binding_tag(signed.claim.member, key, signed.signer)
                pushes.append((key, CommitmentPushItem(signed, record.members, tag)))
        return pushes

    async def page(self, after_seq: int, limit: int, wait_seconds: float = 0.0) -> CommitmentPage:
        """Stored commitments after ``after_seq``. An empty page waits up to
        ``wait_seconds`` for the next ones to be stored, so a node reads its members'
        commitments as they arrive instead of asking several times a second."""
        if not 0 <= after_seq < 2**63:
            raise BadRequest("after must be a sequence number 0..2^63-1")
        if not 1 <= limit <= MAX_COMMITMENTS:
            raise BadRequest(f"limit must be 1..{MAX_COMMITMENTS}")
        if not 0 <= wait_seconds <= MAX_PAGE_WAIT_SECONDS:
            raise BadRequest(f"waitMs must be 0..{int(MAX_PAGE_WAIT_SECONDS * 1000)}")
        stored = self._stored  # taken before reading: a store in between wakes us
        items = await self.store.page_commitments(after_seq, limit)
        if not items and wait_seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stored.wait(), wait_seconds)
            items = await self.store.page_commitments(after_seq, limit)
        return CommitmentPage(tuple(items), items[-1].seq if items else after_seq)

    def _announce_stored(self) -> None:
        stored, self._stored = self._stored, asyncio.Event()
        stored.set()

    def identities(self) -> tuple[tuple[bytes, bytes], ...]:
        return tuple(self.enclave.identities.items())

    # -- P2P ------------------------------------------------------------------------
    async def accept(self, push: CommitmentPush) -> int:
        """Verify every pushed commitment, then store them all (or none); how many.

        400 for an item outside its group or not for ``push.to``, or a bad signature;
        403 (``BindingRejected``) if a binding tag does not prove that the member's
        manager vouches for the signer.
        """
        if len(push.items) > MAX_COMMITMENTS:
            raise RequestTooLarge(f"at most {MAX_COMMITMENTS} commitments in one push")
        records = await self._crypto_work(len(push.items), partial(self._verified, push))
        await self.store.save_commitments(records)
        self._announce_stored()
        return len(records)

    def _verified(self, push: CommitmentPush) -> list[StoredCommitment]:
        """The records to store, if every item passes every check (may run on a thread)."""
        to = push.to
        if not self.enclave.is_local(to):
            raise BadRequest(f"to {b64encode(to)} is not a key of this manager")
        records: list[StoredCommitment] = []
        for index, item in enumerate(push.items):
            where = f"item {index}"
            claim = item.commitment.claim
            keys, members = _group_keys(item.members)
            if to not in keys:
                raise BadRequest(f"{where}: to {b64encode(to)} is not a member of its group")
            if claim.member not in keys:
                raise BadRequest(f"{where}: member {b64encode(claim.member)} is not in members")
            if self.enclave.is_local(claim.member):
                raise BadRequest(
                    f"{where}: member {b64encode(claim.member)} is a key of this manager"
                )
            _check_group(claim.group_id, keys)
            if not self.enclave.check_binding(
                to, claim.member, item.commitment.signer, item.binding
            ):
                raise BindingRejected(
                    f"{where}: the binding tag does not prove that {b64encode(claim.member)}"
                    f" vouches for signer 0x{item.commitment.signer.hex()}"
                )
            if not commitments.verify(item.commitment):
                raise BadRequest(f"{where}: the signature does not verify")
            records.append(StoredCommitment(0, False, members, item.commitment))
        return records

    async def _crypto_work(self, items: int, call: Callable[[], T]) -> T:
        """``call()`` on the crypto pool for many items, inline for a few."""
        if items > _OFFLOAD_ITEMS:
            return await self._crypto.run(call)
        return call()


class CommitmentPusher:
    """Delivers commitments to the other members' managers in the background, batched
    per URL and receiver key, retrying every ``RETRY_INTERVAL`` until acknowledged.

    One request at a time per URL, and URLs independent of each other: a member whose
    manager hangs until the peer timeout delays no one else's commitments. At most
    ``MAX_QUEUED_PUSHES`` items wait; beyond that the oldest are dropped (with a
    warning): a member that stays away that long misses them, which its node's lag
    alarm shows. A key with no known URL waits too (discovery may find it later). A push
    the receiver refuses with a 4xx other than 408 or 429 is dropped, with a warning:
    sending it again would be refused again. The queue lives in memory only.
    """

    def __init__(
        self,
        routes: KeyRoutes,
        peers: CommitmentPeers,
        max_push_bytes: int = 1024 * 1024,
        max_queued: int = MAX_QUEUED_PUSHES,
        retry_interval: float = RETRY_INTERVAL,
    ) -> None:
        self._routes = routes
        self._peers = peers
        self._max_items = max(1, min(MAX_COMMITMENTS, max_push_bytes // _ITEM_BYTES_ESTIMATE))
        self._max_queued = max_queued
        self._retry_interval = retry_interval
        self._fresh: deque[_Push] = deque()
        self._waiting: deque[_Push] = deque()
        self._next_retry = 0.0
        self._sending: dict[str, int] = {}  # URL -> items in its request under way
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._deliveries: set[asyncio.Task[None]] = set()
        self.dropped = 0
        self.delivered = 0
        self._log = ThrottledLog(log)

    @property
    def queued(self) -> int:
        """Items not yet acknowledged (waiting, or in a request under way)."""
        return len(self._fresh) + len(self._waiting) + sum(self._sending.values())

    def enqueue(self, pushes: list[_Push]) -> None:
        if not pushes:
            return
        self._fresh.extend(pushes)
        self._trim()
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="tm-commitment-pusher")

    def _trim(self) -> None:
        excess = len(self._fresh) + len(self._waiting) - self._max_queued
        if excess <= 0:
            return
        for _ in range(excess):
            (self._waiting or self._fresh).popleft()
        self.dropped += excess
        self._log.warning(
            "full",
            "commitment push queue full (%d): dropped the %d oldest (%d dropped so far)",
            self._max_queued,
            excess,
            self.dropped,
        )

    def _retry_later(self, pushes: list[_Push]) -> None:
        if not self._waiting:
            self._next_retry = asyncio.get_running_loop().time() + self._retry_interval
        self._waiting.extend(pushes)
        self._trim()
        self._wake.set()  # the loop's timer may need to start

    async def _run(self) -> None:
        """Hand whatever is due to one delivery task per idle URL; sleep until more is."""
        loop = asyncio.get_running_loop()
        while True:
            timeout = None if not self._waiting else max(0.0, self._next_retry - loop.time())
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass
            self._wake.clear()
            due = list(self._fresh)
            self._fresh.clear()
            if self._waiting and loop.time() >= self._next_retry:
                due = list(self._waiting) + due
                self._waiting.clear()
            self._dispatch(due)

    def _dispatch(self, due: list[_Push]) -> None:
        by_url: dict[str, list[_Push]] = defaultdict(list)
        unrouted: list[_Push] = []
        for key, item in due:
            url = self._routes.url_for(key)
            if url is None:
                unrouted.append((key, item))
            else:
                by_url[url].append((key, item))
        if unrouted:
            self._retry_later(unrouted)
        for url, pushes in by_url.items():
            if url in self._sending:  # its delivery wakes the loop when it ends
                self._fresh.extend(pushes)
                continue
            self._sending[url] = len(pushes)
            task = asyncio.create_task(self._deliver(url, pushes))
            self._deliveries.add(task)
            task.add_done_callback(self._deliveries.discard)

    async def _deliver(self, url: str, pushes: list[_Push]) -> None:
        """Push to one URL, a request per receiver key and chunk; requeue what failed."""
        by_key: dict[bytes, list[CommitmentPushItem]] = defaultdict(list)
        for key, item in pushes:
            by_key[key].append(item)
        chunks = [
            (key, items[start : start + self._max_items])
            for key, items in by_key.items()
            for start in range(0, len(items), self._max_items)
        ]
        failed: list[_Push] = []
        try:
            for index, (key, chunk) in enumerate(chunks):
                try:
                    await self._peers.push_commitments(url, CommitmentPush(key, tuple(chunk)))
                    self.delivered += len(chunk)
                except PeerRequestFailed as exc:
                    if _final_refusal(exc.status):
                        log.warning(
                            "%s refused %d commitments for %s; dropped: %s",
                            url,
                            len(chunk),
                            b64encode(key),
                            exc.message,
                        )
                        continue
                    failed = [(k, item) for k, part in chunks[index:] for item in part]
                    break
                except Exception as exc:  # a bug, not the peer: keep the items, say so
                    log.error("pushing commitments to %s failed unexpectedly: %r", url, exc)
                    failed = [(k, item) for k, part in chunks[index:] for item in part]
                    break
        finally:
            del self._sending[url]
            if failed:
                self._retry_later(failed)
            self._wake.set()  # items held back while this URL was busy

    async def close(self) -> None:
        tasks = [t for t in (self._task, *self._deliveries) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None


def _final_refusal(status: int | None) -> bool:
    return status is not None and 400 <= status < 500 and status not in (408, 429)
