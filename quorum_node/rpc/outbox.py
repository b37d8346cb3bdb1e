"""The outgoing side of one WebSocket connection: a bounded queue and one writer.

Every message for the connection (answers and subscription notifications) is queued
here without waiting, and one writer task sends them in order. A client that reads
slower than the node produces lets the queue grow; once what waits exceeds the bound,
the connection is given up (``on_overflow``), so a slow or stalled subscriber costs a
bounded amount of memory and never holds up the node or other clients.

The bound counts characters of queued JSON text (the same as bytes: the text is ASCII).
A single message larger than the bound is still accepted when nothing else waits, so a
large answer is never refused on its own; what is bounded is the backlog.

Transport-free: ``send`` is any coroutine that writes one message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)


class Outbox:
    def __init__(
        self,
        send: Callable[[str], Awaitable[None]],
        max_queued_bytes: int,
        on_overflow: Callable[[int], None],
    ) -> None:
        self._send = send
        self._max_queued_bytes = max_queued_bytes
        self._on_overflow = on_overflow
        self._messages: deque[str] = deque()
        self._queued_bytes = 0  # waiting messages plus the one being written
        self._ready = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self.closed = False
        self.overflowed = False

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_all())

    def put(self, text: str) -> bool:
        """Queue one message; False if it was not (closed, or this one overflowed)."""
        if self.closed:
            return False
        if self._queued_bytes and self._queued_bytes + len(text) > self._max_queued_bytes:
            self.closed = self.overflowed = True
            waiting = self._queued_bytes + len(text)
            self._drop_waiting()
            self._on_overflow(waiting)
            return False
        self._messages.append(text)
        self._queued_bytes += len(text)
        self._ready.set()
        return True

    async def close(self) -> None:
        """Stop writing (a write blocked on a stalled client included); drop the rest."""
        self.closed = True
        self._drop_waiting()
        if self._writer is not None and not self._writer.done():
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer

    def _drop_waiting(self) -> None:
        self._queued_bytes -= sum(len(text) for text in self._messages)
        self._messages.clear()

    async def _write_all(self) -> None:
        while True:
            while not self._messages:
                self._ready.clear()
                await self._ready.wait()
            text = self._messages.popleft()
            try:
                await self._send(text)
            except (ConnectionError, RuntimeError) as exc:
                # The connection went away; the reading side notices and cleans up.
                logger.debug("WebSocket write failed: %s", exc)
                self.closed = True
                self._drop_waiting()
                return
            finally:
                self._queued_bytes -= len(text)
