"""Party discovery by gossip, with remote key validation.

Every ``interval`` the manager posts its party info to each peer it knows and
merges the reply; peers of peers become peers. A key claimed at a new URL is
routed there only after that URL decrypts a random challenge sealed to the key.

Gossip comes from anyone, so its cost is bounded: the registry keeps at most
its caps (logged once when first reached), at most as many claims are
challenged as there is room for, and at most ``_MAX_CHALLENGES`` challenges
are in flight at once.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os

from tx_manager.enclave import Enclave
from tx_manager.errors import TxManagerError
from tx_manager.messages import PartyInfo, ValidationRequest
from tx_manager.partyinfo import PartyRegistry
from tx_manager.payload import b64encode
from tx_manager.peer_client import PeerClient

log = logging.getLogger(__name__)

_MAX_CHALLENGES = 32


class Discovery:
    def __init__(
        self, registry: PartyRegistry, enclave: Enclave, peers: PeerClient, interval: float
    ) -> None:
        self.registry = registry
        self.enclave = enclave
        self.peers = peers
        self.interval = interval
        self._in_flight: set[tuple[bytes, str]] = set()
        self._challenges = asyncio.Semaphore(_MAX_CHALLENGES)
        self._warned_full: set[str] = set()
        self.rounds = 0

    async def run_forever(self) -> None:
        while True:
            await self.round()
            await asyncio.sleep(self.interval)

    async def round(self) -> None:
        """One exchange with every known peer, concurrently; failures wait for the next round."""
        await asyncio.gather(*(self._exchange(url) for url in self.registry.peers))
        self.rounds += 1

    async def _exchange(self, url: str) -> None:
        """One exchange; any failure is logged and waits for the next round."""
        try:
            reply = await self.peers.exchange_partyinfo(url, self.registry.snapshot())
        except TxManagerError as exc:
            log.debug("partyinfo with %s failed: %s", url, exc)
            return
        try:
            await self.merge(reply)
        except Exception:
            log.exception("merging the party info of %s failed", url)

    async def merge(self, info: PartyInfo) -> None:
        """Learn peers and validated key routes from one party info (received or replied)."""
        self.registry.add_peer(info.url)
        for peer in info.peers:
            self.registry.add_peer(peer)
        claims = [c for c in self.registry.unverified_claims(info) if c not in self._in_flight]
        room = self.registry.key_room - len(self._in_flight)
        known = [c for c in claims if self.registry.url_for(c[0]) is not None]
        new = [c for c in claims if self.registry.url_for(c[0]) is None]
        if len(new) > max(room, 0):
            self.registry.ignored_keys += len(new) - max(room, 0)
            new = new[: max(room, 0)]
        claims = known + new
        self._warn_once_if_full()
        self._in_flight.update(claims)
        try:
            await asyncio.gather(*(self._validate(key, url) for key, url in claims))
        finally:
            self._in_flight.difference_update(claims)
        self._warn_once_if_full()

    def _warn_once_if_full(self) -> None:
        for table, ignored, cap in (
            ("peers", self.registry.ignored_peers, self.registry.max_peers),
            ("key routes", self.registry.ignored_keys, self.registry.max_key_routes),
        ):
            if ignored and table not in self._warned_full:
                self._warned_full.add(table)
                log.warning(
                    "the %s table is full (%d); gossip beyond it is ignored from now on "
                    "(raise limits.max_%s if this network is really that large)",
                    table,
                    cap,
                    "peers" if table == "peers" else "key_routes",
                )

    async def _validate(self, key: bytes, url: str) -> None:
        secret = os.urandom(32)
        local = self.enclave.default_key
        try:
            async with self._challenges:
                nonce, box = self.enclave.seal_challenge(local, key, secret)
                answer = await self.peers.validate(url, ValidationRequest(local, key, nonce, box))
        except TxManagerError as exc:
            log.info("key %s at %s not validated: %s", b64encode(key), url, exc)
            return
        if hmac.compare_digest(answer, secret):
            self.registry.accept(key, url)
        else:
            log.warning("%s claimed key %s but failed its challenge", url, b64encode(key))

    def answer_challenge(self, request: ValidationRequest) -> bytes:
        return self.enclave.open_challenge(
            request.to_key, request.from_key, request.nonce, request.box
        )
