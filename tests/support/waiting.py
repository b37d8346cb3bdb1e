"""The one way tests wait: poll a condition until a deadline, never a fixed sleep.

Every helper and test in this suite imports ``wait_until`` from here, so a change
to how the suite waits (backoff, message) happens in one place.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

_FIRST_DELAY = 0.01
_MAX_DELAY = 0.1


class _Poll:
    """The deadline and the delays one wait polls with (sync or async alike)."""

    def __init__(self, timeout: float, what: str) -> None:
        self._deadline = time.monotonic() + timeout
        self._timeout = timeout
        self._what = what
        self._delay = _FIRST_DELAY

    def done(self, result: Any) -> bool:
        """Whether ``result`` ends the wait; AssertionError once the deadline has passed."""
        if result:
            return True
        if time.monotonic() > self._deadline:
            raise AssertionError(f"timed out after {self._timeout}s waiting for {self._what}")
        return False

    def next_delay(self) -> float:
        delay = self._delay
        self._delay = min(delay * 2, _MAX_DELAY)
        return delay


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``condition`` until it returns something truthy, and return that.

    Polls at once, then with a delay doubling from 10 ms to at most 100 ms. After
    ``timeout`` seconds it raises AssertionError naming ``what``. An exception
    raised by ``condition`` propagates at once (a process that exited, say).
    """
    poll = _Poll(timeout, what)
    while not poll.done(result := condition()):
        time.sleep(poll.next_delay())
    return result


async def wait_until_async(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """``wait_until`` for a test on an event loop: sleeps without blocking the loop, so
    the code under test runs while the test waits."""
    poll = _Poll(timeout, what)
    while not poll.done(result := condition()):
        await asyncio.sleep(poll.next_delay())
    return result
