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


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``condition`` until it returns something truthy, and return that.

    Polls at once, then with a delay doubling from 10 ms to at most 100 ms. After
    ``timeout`` seconds it raises AssertionError naming ``what``. An exception
    raised by ``condition`` propagates at once (a process that exited, say).
    """
    deadline = time.monotonic() + timeout
    delay = _FIRST_DELAY
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, _MAX_DELAY)


async def wait_until_async(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """``wait_until`` for a test on an event loop: sleeps without blocking the loop, so
    the code under test runs while the test waits."""
    deadline = time.monotonic() + timeout
    delay = _FIRST_DELAY
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(delay)
        delay = min(delay * 2, _MAX_DELAY)
