"""One line per ongoing failure, not one per try.

A peer that is down, a manager that does not answer, a member that keeps sending what
it must not: each would otherwise write a line every time it happens, which under
load is thousands a second (seen: 19,478 lines in 8 s about one killed manager).
``ThrottledLog`` writes the first occurrence of a kind of event at once, then at most
one line per ``interval`` for it, saying how many were held back meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

#: Kinds of event remembered at most; the oldest is forgotten first (a peer that varies
#: its address cannot grow the table without bound).
MAX_KEYS = 1024


class ThrottledLog:
    def __init__(
        self,
        logger: logging.Logger,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        #: key -> (when a line was last written, occurrences held back since)
        self._seen: OrderedDict[Hashable, tuple[float, int]] = OrderedDict()

    def warning(self, key: Hashable, message: str, *args: Any) -> bool:
        return self.log(logging.WARNING, key, message, *args, stacklevel=3)

    def info(self, key: Hashable, message: str, *args: Any) -> bool:
        return self.log(logging.INFO, key, message, *args, stacklevel=3)

    def log(self, level: int, key: Hashable, message: str, *args: Any, stacklevel: int = 2) -> bool:
        """Write ``message`` for ``key`` unless a line for it was written less than
        ``interval`` ago; True if written. ``key`` names the event (for example a kind
        and a peer)."""
        now = self._clock()
        with self._lock:
            last, held_back = self._seen.get(key, (None, 0))
            if last is not None and now - last < self._interval:
                self._seen[key] = (last, held_back + 1)
                return False
            self._seen[key] = (now, 0)
            self._seen.move_to_end(key)
            while len(self._seen) > MAX_KEYS:
                self._seen.popitem(last=False)
        if held_back:
            message += " (%d more like this in the last %.0fs)"
            args = (*args, held_back, now - last if last is not None else 0.0)
        self._logger.log(level, message, *args, stacklevel=stacklevel)
        return True

    def forget(self, key: Hashable) -> None:
        """The event is over (the peer answered again): its next occurrence is written
        at once."""
        with self._lock:
            self._seen.pop(key, None)
