"""Per-caller token buckets for the P2P endpoints anyone on the network can call.

Pure (no I/O, no aiohttp): the P2P edge asks ``acquire(caller)`` before a
limited handler runs and answers 429 with ``Retry-After`` when it returns a
wait. Each caller (a remote address) has a bucket of ``burst`` tokens refilled
at ``rate`` per second; at most ``max_callers`` buckets are remembered, least
recently used forgotten first (a forgotten caller starts again with a full
bucket), so a flood of source addresses cannot grow memory.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_MAX_CALLERS = 10_000


@dataclass(frozen=True)
class RateLimit:
    """``rate`` requests per second sustained, ``burst`` at once, per caller."""

    rate: float
    burst: float

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("a rate limit needs rate > 0 and burst >= 1")


class TokenBuckets:
    def __init__(
        self,
        limit: RateLimit,
        max_callers: int = DEFAULT_MAX_CALLERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self._max_callers = max_callers
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self.refused = 0

    def acquire(self, caller: str) -> float:
        """Take one token for ``caller``: 0.0 if granted, else seconds until one is free."""
        now = self._clock()
        tokens, updated = self._buckets.pop(caller, (self.limit.burst, now))
        tokens = min(self.limit.burst, tokens + (now - updated) * self.limit.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.limit.rate
            self.refused += 1
        self._buckets[caller] = (tokens, now)
        while len(self._buckets) > self._max_callers:
            self._buckets.popitem(last=False)
        return wait

    @property
    def callers(self) -> int:
        return len(self._buckets)
