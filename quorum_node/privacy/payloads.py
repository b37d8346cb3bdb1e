"""Asking the node's own transaction manager for the payloads of a block's private
transactions, before the chain thread executes them.

"Not found" (404) means this node is not a party. Any other failure is not an answer:
treating it as "not a party" would silently fork this node's private state from the
other parties' (GoQuorum issue #1574). So failures are retried, and if the manager still
cannot answer, ``PrivateDataUnavailable`` stops the block from being built or imported;
the caller logs why and tries again later.

A manager refilling its store from its peers (``ManagerRecovering``, its 503 for a
payload it does not hold yet) is no answer either, however long it takes: an import
polls it quietly for up to ``RECOVERY_WAIT_SECONDS`` (one INFO line per wait), then
gives up for now like any failure, and is tried again; nothing is cached meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from quorum_node.errors import PrivateDataUnavailable
from quorum_shared.log_throttle import ThrottledLog
from tx_manager.client import ClientError, ManagerRecovering, Q2TClient, ReceiveResult

logger = logging.getLogger(__name__)
#: One line per ongoing outage, not one per block and try (a builder asks every block).
_log = ThrottledLog(logger)

RETRY_DELAYS_SECONDS = (0.1, 0.3, 1.0, 2.0, 4.0)
RECOVERY_POLL_SECONDS = 0.5
RECOVERY_WAIT_SECONDS = 60.0
CACHE_SIZE = 20_000
MAX_PER_REQUEST = 500  # the manager takes at most 1,000 keys per request


@dataclass(frozen=True)
class PrivatePayload:
    payload: bytes
    group_id: bytes
    parties: tuple[str, ...]  # every key of the group, base64, sorted
    privacy_flag: int
    mandatory_for: tuple[str, ...] = ()  # flag 2, base64, sorted; authenticated in the envelope
    sender_key: str = ""  # base64; authenticated in the envelope


class PayloadResolver:
    """One node's view of private payloads: the plaintext where it is a party, else None.

    Answers are kept (a bounded cache): a block maker fetches a payload to build the
    block and fetches nothing again when it commits it, and a restarted import of the
    same block asks the manager once.
    """

    def __init__(self, manager: Q2TClient | None) -> None:
        self._manager = manager
        self._cache: OrderedDict[bytes, PrivatePayload | None] = OrderedDict()
        self._own_keys: frozenset[str] | None = None

    async def own_keys(self) -> frozenset[str]:
        """The manager's keys: which parties this node speaks for (asked once)."""
        if self._own_keys is None:
            if self._manager is None:
                return frozenset()
            try:
                keys = await self._manager.keys()
            except ClientError as exc:
                raise PrivateDataUnavailable(
                    f"the transaction manager at {self._manager.base_url} did not say "
                    f"which keys it holds: {exc}"
                ) from None
            self._own_keys = frozenset(keys)
        return self._own_keys

    async def resolve(
        self, payload_hashes: Iterable[bytes], *, patient: bool = True
    ) -> dict[bytes, PrivatePayload | None]:
        """Payloads by hash. ``patient`` retries with back-off before giving up (import:
        the block must wait for the answer); otherwise one attempt (a block maker can
        leave the transaction for a later block)."""
        wanted = list(dict.fromkeys(payload_hashes))
        if self._manager is None:
            return dict.fromkeys(wanted)  # no manager: never a party to anything
        missing = [h for h in wanted if h not in self._cache]
        manager = self._manager
        for start in range(0, len(missing), MAX_PER_REQUEST):
            chunk = missing[start : start + MAX_PER_REQUEST]
            for payload_hash, result in zip(
                chunk, await self._fetch(manager, chunk, patient), strict=True
            ):
                self._cache[payload_hash] = result
                while len(self._cache) > CACHE_SIZE:
                    self._cache.popitem(last=False)
        return {h: self._cache[h] for h in wanted}

    async def _fetch(
        self, manager: Q2TClient, payload_hashes: list[bytes], patient: bool
    ) -> list[PrivatePayload | None]:
        """Every payload of ``payload_hashes`` in one request to the manager (a block's
        payloads at once: one HTTP round trip instead of one per transaction)."""
        loop = asyncio.get_running_loop()
        delays = iter((0.0, *RETRY_DELAYS_SECONDS) if patient else (0.0,))
        delay: float | None = next(delays)
        last_error: Exception | None = None
        waiting_since: float | None = None  # the manager first said it was recovering
        while delay is not None:
            if delay:
                await asyncio.sleep(delay)
            try:
                received = await manager.receive_many(payload_hashes)
            except ManagerRecovering as exc:
                last_error = exc
                if patient:
                    if waiting_since is None:
                        waiting_since = loop.time()
                        logger.info(
                            "waiting for the transaction manager at %s to finish its "
                            "recovery: it does not hold %s yet",
                            manager.base_url,
                            _named(payload_hashes),
                        )
                    if loop.time() - waiting_since < RECOVERY_WAIT_SECONDS:
                        delay = RECOVERY_POLL_SECONDS
                        continue
            except ClientError as exc:
                last_error = exc
                _log.warning(
                    "no answer",
                    "transaction manager did not answer for %s: %s",
                    _named(payload_hashes),
                    exc,
                )
            else:
                if waiting_since is not None:
                    logger.info(
                        "the transaction manager at %s answered for %s after %.1fs of recovery",
                        manager.base_url,
                        _named(payload_hashes),
                        loop.time() - waiting_since,
                    )
                return [_private_payload(found) for found in received]
            delay = next(delays, None)
        raise PrivateDataUnavailable(
            f"the transaction manager at {manager.base_url} did not answer for "
            f"{_named(payload_hashes)}: {last_error}"
        )


def _private_payload(found: ReceiveResult | None) -> PrivatePayload | None:
    if found is None:
        return None
    return PrivatePayload(
        payload=found.payload,
        group_id=found.privacy_group_id,
        parties=tuple(sorted(found.parties)),
        privacy_flag=found.privacy_flag,
        mandatory_for=tuple(sorted(found.mandatory_recipients)),
        sender_key=found.sender_key,
    )


def _named(payload_hashes: list[bytes]) -> str:
    """``payload 1a2b3c4d…``, with how many more were asked for at once."""
    more = len(payload_hashes) - 1
    return f"payload {payload_hashes[0][:8].hex()}…" + (f" and {more} more" if more else "")
