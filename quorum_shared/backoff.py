"""How long to wait before trying again: doubling from ``first`` to ``cap``, with jitter.

Every loop that retries something that failed (a manager that does not answer, a peer
that is down, a leader that is gone) waits ``next()`` before the next try and calls
``reset()`` once it worked, so that an ongoing failure costs a few tries a second at
first and one every ``cap`` seconds after that, instead of a try per loop turn. The
jitter (each wait drawn from [1 - jitter, 1] of its nominal length) keeps nodes that
failed together from retrying in step.
"""

from __future__ import annotations

import random


class Backoff:
    def __init__(
        self, first: float, cap: float, *, factor: float = 2.0, jitter: float = 0.25
    ) -> None:
        if not 0 < first <= cap or factor < 1 or not 0 <= jitter < 1:
            raise ValueError("need 0 < first <= cap, factor >= 1 and 0 <= jitter < 1")
        self.first = first
        self.cap = cap
        self._factor = factor
        self._jitter = jitter
        self._nominal = first
        #: Tries that failed since the last reset.
        self.failures = 0

    def next(self) -> float:
        """The wait before the next try (one more failure counted)."""
        wait = self._nominal * (1 - self._jitter * random.random())  # noqa: S311 - jitter
        self._nominal = min(self._nominal * self._factor, self.cap)
        self.failures += 1
        return wait

    def reset(self) -> None:
        self._nominal = self.first
        self.failures = 0
