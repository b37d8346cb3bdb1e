"""Calls from this manager to other managers' P2P APIs (aiohttp client).

Every failure becomes ``PeerRequestFailed`` naming the URL, so callers decide what an
unreachable peer means (a failed send, a skipped discovery round).
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from tx_manager.commitment_messages import CommitmentPush, CommitmentPushResult
from tx_manager.config import TlsConfig
from tx_manager.errors import PeerRequestFailed, TxManagerError
from tx_manager.futures import settle
from tx_manager.messages import (
    EnvelopeBatch,
    JsonMessage,
    PartyInfo,
    ResendRequest,
    ResendResponse,
    ValidationRequest,
    ValidationResponse,
)
from tx_manager.payload import Envelope, b64encode
from tx_manager.tls import PinningConnector, client_context

_JSON = {"Content-Type": "application/json"}
_BINARY = {"Content-Type": "application/octet-stream"}


class PeerClient:
    def __init__(self, tls: TlsConfig, timeout: float) -> None:
        self._tls = tls
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        #: Push requests (``/push`` and ``/pushBatch``) sent, the envelopes they carried,
        #: and the requests that failed: read by ``tx_manager.metrics`` when scraped.
        self.pushes = 0
        self.pushed_envelopes = 0
        self.push_failures = 0

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            options: dict[str, Any] = {"limit": 256, "limit_per_host": 64}
            context = client_context(self._tls)
            if context is not None:
                options["ssl"] = context
            connector: aiohttp.TCPConnector
            if self._tls.mode == "allowlist":
                connector = PinningConnector(frozenset(self._tls.allowed_fingerprints), **options)
            else:
                connector = aiohttp.TCPConnector(**options)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _post(
        self, url: str, path: str, body: bytes, headers: dict[str, str], expect: int
    ) -> bytes:
        try:
            async with self._client().post(url + path, data=body, headers=headers) as response:
                content = await response.read()
                if response.status != expect:
                    reason = content[:300].decode("utf-8", "replace")
                    raise PeerRequestFailed(
                        url, f"HTTP {response.status}: {reason}", response.status
                    )
                return content
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise PeerRequestFailed(url, f"{type(exc).__name__}: {exc}".rstrip(": ")) from exc

    async def _post_json(self, url: str, path: str, message: JsonMessage, expect: int) -> bytes:
        return await self._post(url, path, message.to_bytes(), _JSON, expect)

    async def push(self, url: str, envelope: Envelope) -> None:
        headers = dict(_BINARY)
        headers["c11n-key"] = b64encode(envelope.hash)
        await self._counted_push(url, "/push", envelope.to_bytes(), headers, 1)

    async def push_batch(self, url: str, envelopes: list[Envelope]) -> None:
        body = EnvelopeBatch(tuple(envelopes)).to_bytes()
        await self._counted_push(url, "/pushBatch", body, _BINARY, len(envelopes))

    async def _counted_push(
        self, url: str, path: str, body: bytes, headers: dict[str, str], envelopes: int
    ) -> None:
        self.pushes += 1
        self.pushed_envelopes += envelopes
        try:
            await self._post(url, path, body, headers, 201)
        except PeerRequestFailed:
            self.push_failures += 1
            raise

    async def exchange_partyinfo(self, url: str, info: PartyInfo) -> PartyInfo:
        body = await self._post_json(url, "/partyinfo", info, 200)
        return self._decode(url, PartyInfo, body)

    async def validate(self, url: str, request: ValidationRequest) -> bytes:
        body = await self._post_json(url, "/partyinfo/validate", request, 200)
        return self._decode(url, ValidationResponse, body).value

    async def resend(self, url: str, request: ResendRequest) -> int:
        body = await self._post_json(url, "/resend", request, 200)
        return self._decode(url, ResendResponse, body).pushed

    async def push_commitments(self, url: str, push: CommitmentPush) -> int:
        body = await self._post_json(url, "/commitments/push", push, 200)
        return self._decode(url, CommitmentPushResult, body).stored

    @staticmethod
    def _decode(url: str, kind: type[Any], body: bytes) -> Any:
        try:
            return kind.from_bytes(body)
        except TxManagerError as exc:
            raise PeerRequestFailed(url, f"malformed reply: {exc.message}") from exc


class PushCoalescer:
    """Pushes envelopes to a peer in batches, each caller still awaiting its own outcome.

    Concurrent sends to the same manager are gathered while earlier batches are
    in flight and go out as one ``/pushBatch`` (one HTTP request, one commit on
    the receiver). A caller returns only when the batch holding its envelope was
    acknowledged, so the promise of ``/send`` is unchanged. If a batch is refused
    with an HTTP error, its envelopes are retried one by one, so one bad envelope
    cannot fail the sends that happened to share its batch.

    Every caller is answered, whatever happens: an unexpected exception while
    pushing becomes that caller's error, and ``close`` fails whatever still waits.
    """

    def __init__(
        self,
        peers: PeerClient,
        max_batch: int = 256,
        max_bytes: int = 1024 * 1024,
        in_flight_per_peer: int = 4,
    ) -> None:
        self._peers = peers
        self._max_batch = max_batch
        self._max_bytes = max_bytes
        self._in_flight_limit = in_flight_per_peer
        self._pending: dict[str, list[tuple[Envelope, asyncio.Future[None]]]] = {}
        self._in_flight: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    async def push(self, url: str, envelope: Envelope) -> None:
        if self._closed:
            raise PeerRequestFailed(url, "the manager is shutting down")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(url, []).append((envelope, future))
        self._maybe_flush(url)
        await future

    def _maybe_flush(self, url: str) -> None:
        while (
            not self._closed
            and self._pending.get(url)
            and self._in_flight.get(url, 0) < self._in_flight_limit
        ):
            batch = self._take(url)
            self._in_flight[url] = self._in_flight.get(url, 0) + 1
            task = asyncio.create_task(self._send(url, batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _take(self, url: str) -> list[tuple[Envelope, asyncio.Future[None]]]:
        queue = self._pending[url]
        size = 0
        count = 0
        for envelope, _ in queue:
            size += len(envelope.cipher_text) + 512
            if count and (count >= self._max_batch or size > self._max_bytes):
                break
            count += 1
        batch, self._pending[url] = queue[:count], queue[count:]
        return batch

    async def _send(self, url: str, batch: list[tuple[Envelope, asyncio.Future[None]]]) -> None:
        try:
            live = [(e, f) for e, f in batch if not f.done()]
            if len(live) == 1:
                await self._deliver_one(url, *live[0])
            elif live:
                try:
                    await self._peers.push_batch(url, [e for e, _ in live])
                    for _, future in live:
                        settle(future, None, None)
                except PeerRequestFailed as exc:
                    if exc.status is None:  # unreachable: every envelope shares the fate
                        for _, future in live:
                            settle(future, None, exc)
                    else:
                        await asyncio.gather(*(self._deliver_one(url, e, f) for e, f in live))
                except Exception as exc:  # a bug, not the peer: still answer every caller
                    for _, future in live:
                        settle(future, None, exc)
        finally:
            for _, future in batch:  # cancelled (close) or anything missed above
                if not future.done():
                    settle(future, None, PeerRequestFailed(url, "the push was abandoned"))
            self._in_flight[url] -= 1
            self._maybe_flush(url)

    async def _deliver_one(
        self, url: str, envelope: Envelope, future: asyncio.Future[None]
    ) -> None:
        try:
            await self._peers.push(url, envelope)
            settle(future, None, None)
        except Exception as exc:
            settle(future, None, exc)

    async def close(self) -> None:
        """Stop pushing: in-flight pushes are cancelled and every waiting caller fails."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for url, waiting in self._pending.items():
            for _, future in waiting:
                settle(future, None, PeerRequestFailed(url, "the manager is shutting down"))
        self._pending.clear()
