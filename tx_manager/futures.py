"""Answering a waiter exactly once, from any path: the store's writer thread, the crypto
pool and the push coalescer all settle futures that another path (a cancellation, a
shutdown) may have settled first."""

from __future__ import annotations

import asyncio
from typing import Any


def settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    """Set ``error`` (if any) or ``result`` on ``future`` unless it is already done."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
