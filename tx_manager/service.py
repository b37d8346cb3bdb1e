"""What a manager does, independent of HTTP: send, receive, accept pushes, resend.

The Q2T and P2P handlers are thin adapters over ``TransactionManager``. The
main flow of a send reads top to bottom in ``send``: resolve the sender,
encrypt, push to every remote recipient's manager concurrently, and only when
all acknowledged store the sender's copy durably and return the hash. A failed
push stores nothing, so no hash of a failed send is ever visible as sent.

The main flow of a push reads top to bottom in ``accept_push``: the announced
hash, then every cryptographic check (in one call on the crypto thread pool,
for the whole batch), then the store, which merges boxes only into an
identical stored header. A refusal changes nothing.

Crypto that could hold the event loop for more than about a millisecond runs on a
``CryptoPool``, which batches concurrent calls into one thread hop: encrypting or
decrypting more than 256 KiB, verifying a pushed batch of more than 16 envelopes or
256 KiB. Smaller work runs inline, because a hop (about 40 µs of CPU idle, 0.1 ms under
load) costs more than the work it moves: measured with ``bench.tm_bench`` on two cores,
offloading every push cut sends by about 20%, and every decryption reads by about 30%.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import TypeVar

from tx_manager.commitments import CommitmentService
from tx_manager.crypto_pool import CryptoPool
from tx_manager.disclosure import DisclosedEnvelope
from tx_manager.disclosure_messages import (
    DiscloseRequest,
    SignDisclosureRequest,
    SignDisclosureResponse,
)
from tx_manager.enclave import Enclave, SendMetadata
from tx_manager.errors import (
    BadRequest,
    EnvelopeConflict,
    HashMismatch,
    NotFound,
    PeerRequestFailed,
    RecipientUnreachable,
    Recovering,
    TxManagerError,
    UnknownRecipient,
)
from tx_manager.messages import (
    PrivacyOptions,
    ReceiveResponse,
    ResendRequest,
    SendRequest,
    SendResponse,
    SendSignedRequest,
    StoreRawRequest,
    StoreRawResponse,
)
from tx_manager.partyinfo import PartyRegistry
from tx_manager.payload import (
    Envelope,
    PrivacyMode,
    Raw,
    RawTransaction,
    b64encode,
    privacy_group_id,
)
from tx_manager.peer_client import PeerClient, PushCoalescer
from tx_manager.store import Store

log = logging.getLogger(__name__)

T = TypeVar("T")

RESEND_PAGE = 200
# Payloads above this size are encrypted, decrypted and verified off the event loop (2 ms per
# MB), and so is a pushed batch of more than _OFFLOAD_ENVELOPES (about 60 µs each).
_OFFLOAD_BYTES = 256 * 1024
_OFFLOAD_ENVELOPES = 16


class TransactionManager:
    def __init__(
        self,
        enclave: Enclave,
        store: Store,
        registry: PartyRegistry,
        peers: PeerClient,
        batch_bytes: int = 2 * 1024 * 1024,
    ) -> None:
        self.enclave = enclave
        self.store = store
        self.registry = registry
        self.peers = peers
        self.batch_bytes = batch_bytes
        self.pushes = PushCoalescer(peers, max_bytes=batch_bytes)
        self._crypto = CryptoPool(workers=max(1, min(2, os.cpu_count() or 1)))
        self.commitments = CommitmentService(
            enclave, store, registry, peers, self._crypto, max_push_bytes=batch_bytes
        )
        self._recoveries = 0  # announced or running; > 0: a missing payload is no answer
        self.recovery_received = 0  # envelopes peers reported resent in the last recovery

    async def _off_loop(self, function: Callable[..., T], *args: object) -> T:
        return await self._crypto.run(partial(function, *args))

    async def _decrypt(self, size: int, function: Callable[..., T], *args: object) -> T:
        """``function(*args)`` on the crypto pool for a large ciphertext, inline else."""
        if size > _OFFLOAD_BYTES:
            return await self._off_loop(function, *args)
        return function(*args)

    async def close(self) -> None:
        """Stop pushing and release the crypto threads (after the HTTP servers stopped)."""
        await self.pushes.close()
        await self.commitments.close()
        await self._crypto.close()

    # -- Q2T ------------------------------------------------------------------------
    def _sender(self, from_key: bytes | None) -> bytes:
        if from_key is None:
            return self.enclave.default_key
        if not self.enclave.is_local(from_key):
            raise BadRequest(f"from key {b64encode(from_key)} is not held by this manager")
        return from_key

    def _managed(self, keys: Iterable[bytes]) -> tuple[bytes, ...]:
        return tuple(k for k in dict.fromkeys(keys) if self.enclave.is_local(k))

    @staticmethod
    def _metadata(options: PrivacyOptions, recipients: tuple[bytes, ...]) -> SendMetadata:
        if options.privacy_flag is PrivacyMode.MANDATORY_RECIPIENTS:
            if not options.mandatory_recipients:
                raise BadRequest("privacyFlag 2 needs mandatoryRecipients")
            missing = set(options.mandatory_recipients) - set(recipients)
            if missing:
                names = ", ".join(sorted(b64encode(k) for k in missing))
                raise BadRequest(f"mandatory recipients {names} are not among the recipients")
        elif options.mandatory_recipients:
            raise BadRequest("mandatoryRecipients is only allowed with privacyFlag 2")
        if options.privacy_flag is PrivacyMode.PRIVATE_STATE_VALIDATION and not options.exec_hash:
            raise BadRequest("privacyFlag 3 needs execHash")
        return SendMetadata(
            privacy_mode=options.privacy_flag,
            affected_contract_transactions=tuple(
                (h, b"") for h in options.affected_contract_transactions
            ),
            exec_hash=options.exec_hash,
            mandatory_recipients=options.mandatory_recipients,
        )

    async def send(self, request: SendRequest) -> SendResponse:
        sender = self._sender(request.from_key)
        metadata = self._metadata(request.options, request.to)
        self._routes(request.to)  # fail fast on an unknown key, before any encryption
        if len(request.payload) > _OFFLOAD_BYTES:
            envelope = await self._off_loop(
                self.enclave.encrypt, request.payload, sender, request.to, metadata
            )
        else:
            envelope = self.enclave.encrypt(request.payload, sender, request.to, metadata)
        return await self._distribute(envelope)

    async def store_raw(self, request: StoreRawRequest) -> StoreRawResponse:
        """Encrypt and keep apart; with ``to`` the group is fixed under the hash now."""
        sender = self._sender(request.from_key)
        if request.to is None:
            raw = self.enclave.encrypt_raw(request.payload, sender)
        else:
            metadata = self._metadata(request.options, request.to)
            raw = self.enclave.encrypt_raw(request.payload, sender, request.to, metadata)
        await self.store.save_raw(raw)
        return StoreRawResponse(key=raw.hash)

    async def send_signed(self, request: SendSignedRequest) -> SendResponse:
        """Distribute a raw transaction under its fixed hash.

        A raw transaction stored with ``to`` must be sent to the same terms (400
        naming the difference). One stored without ``to`` takes the terms named
        now, bound by the header MAC; once distributed, it cannot be sent again
        to other terms (409), so its own manager never widens its group.
        """
        raw = await self.store.find_raw(request.hash)
        if raw is None:
            raise NotFound(f"no raw transaction {b64encode(request.hash)} (use /storeraw first)")
        metadata = self._metadata(request.options, request.to)
        self._routes(request.to)
        envelope = self.enclave.wrap_raw(raw, request.to, metadata)
        existing = await self.store.find_envelope(envelope.hash)
        if existing is not None:
            reason = existing.conflict_with(envelope)
            if reason is not None:
                raise EnvelopeConflict(
                    b64encode(envelope.hash), f"already distributed with other terms: {reason}"
                )
        return await self._distribute(envelope)

    def _routes(self, keys: Iterable[bytes]) -> dict[str, set[bytes]]:
        """Remote recipients grouped by their manager's URL; unknown keys fail the send."""
        routes: dict[str, set[bytes]] = defaultdict(set)
        for key in keys:
            if self.enclave.is_local(key):
                continue
            url = self.registry.url_for(key)
            if url is None:
                raise UnknownRecipient(b64encode(key))
            routes[url].add(key)
        return routes

    async def _distribute(self, envelope: Envelope) -> SendResponse:
        routes = self._routes(envelope.recipient_keys)
        urls = list(routes)
        results = await asyncio.gather(
            *(self.pushes.push(url, envelope.for_recipients(routes[url])) for url in urls),
            return_exceptions=True,
        )
        for url, result in zip(urls, results, strict=True):
            if isinstance(result, PeerRequestFailed):
                key = b64encode(sorted(routes[url])[0])
                raise RecipientUnreachable(key, url, result.message)
            if isinstance(result, BaseException):
                raise result
        await self.store.save_envelopes([envelope])
        return SendResponse(
            key=envelope.hash,
            managed_parties=self._managed(envelope.parties),
            sender_key=envelope.sender_key,
        )

    async def _find(self, tx_hash: bytes) -> Envelope:
        envelope = await self.store.find_envelope(tx_hash)
        if envelope is None:
            raise NotFound(f"transaction {b64encode(tx_hash)} not found")
        return envelope

    async def receive_many(
        self, tx_hashes: Sequence[bytes], to: bytes | None
    ) -> list[ReceiveResponse | None]:
        """``receive`` of each hash, None where it answers "not found" (any other
        failure fails the whole request: the node retries the block, never guesses)."""

        async def one(tx_hash: bytes) -> ReceiveResponse | None:
            try:
                return await self.receive(tx_hash, to)
            except NotFound:
                return None

        return list(await asyncio.gather(*(one(tx_hash) for tx_hash in tx_hashes)))

    async def receive(self, tx_hash: bytes, to: bytes | None, raw: bool = False) -> ReceiveResponse:
        """The payload for this manager's keys. A payload not held raises ``NotFound``
        ("not a party"), or ``Recovering`` while a recovery may still bring it."""
        recovering = self.recovering  # before the read: a recovery ending during it counts
        if raw:
            stored_raw = await self.store.find_raw(tx_hash)
            if stored_raw is None:
                raise _missing(f"raw transaction {b64encode(tx_hash)} not found", recovering)
            return await self._raw_response(stored_raw)
        envelope = await self.store.find_envelope(tx_hash)
        if envelope is None:
            raise _missing(f"transaction {b64encode(tx_hash)} not found", recovering)
        if to is not None and not self.enclave.is_local(to):
            raise NotFound(f"key {b64encode(to)} is not held by this manager")
        payload = await self._decrypt(len(envelope.cipher_text), self.enclave.decrypt, envelope, to)
        parties = envelope.parties
        return ReceiveResponse(
            payload=payload,
            privacy_flag=envelope.privacy_mode,
            affected_contract_transactions=tuple(
                h for h, _ in envelope.affected_contract_transactions
            ),
            exec_hash=envelope.exec_hash,
            managed_parties=self._managed(parties),
            sender_key=envelope.sender_key,
            parties=parties,
            privacy_group_id=privacy_group_id(parties),
            mandatory_recipients=envelope.mandatory_recipients,
        )

    async def _raw_response(self, raw: Raw) -> ReceiveResponse:
        """A raw transaction's view: the terms ``/storeraw`` fixed, else its sender alone."""
        terms = raw.header.terms if isinstance(raw, RawTransaction) else None
        parties = (raw.sender_key,) if terms is None else terms.group_keys
        return ReceiveResponse(
            payload=await self._decrypt(len(raw.cipher_text), self.enclave.open_raw, raw),
            privacy_flag=PrivacyMode.STANDARD if terms is None else terms.privacy_mode,
            affected_contract_transactions=(
                () if terms is None else tuple(h for h, _ in terms.affected_contract_transactions)
            ),
            exec_hash=b"" if terms is None else terms.exec_hash,
            managed_parties=self._managed(parties),
            sender_key=raw.sender_key,
            parties=parties,
            privacy_group_id=privacy_group_id(parties),
            mandatory_recipients=() if terms is None else terms.mandatory_recipients,
        )

    async def participants(self, tx_hash: bytes) -> tuple[bytes, ...]:
        return (await self._find(tx_hash)).parties

    async def is_sender(self, tx_hash: bytes) -> bool:
        return self.enclave.is_local((await self._find(tx_hash)).sender_key)

    async def delete(self, tx_hash: bytes) -> None:
        deleted_envelope = await self.store.delete_envelope(tx_hash)
        deleted_raw = await self.store.delete_raw(tx_hash)
        if not (deleted_envelope or deleted_raw):
            raise NotFound(f"transaction {b64encode(tx_hash)} not found")

    # -- disclosure -----------------------------------------------------------------
    async def disclose(self, request: DiscloseRequest) -> DisclosedEnvelope:
        """Wrap a held transaction's master key for ``request.recipient`` (any key).

        ``NotFound`` unless a local key (``from``, if given) is a party to a transaction
        held here (``Recovering`` while a recovery may still bring it); ``BadRequest``
        for a ``from`` that is not local, a bad recipient key, or a transaction whose
        terms are not under its hash. Logged at INFO (hash, discloser, recipient): a
        disclosure is worth an audit trail.
        """
        recovering = self.recovering
        if request.from_key is not None:
            self._sender(request.from_key)  # BadRequest if not a local key
        envelope = await self.store.find_envelope(request.hash)
        if envelope is None:
            raise _missing(f"transaction {b64encode(request.hash)} not found", recovering)
        discloser = request.from_key or self._party_key(envelope)
        disclosed = await self._off_loop(
            self.enclave.disclose, envelope, discloser, request.recipient
        )
        log.info(
            "disclosed transaction %s by key %s to key %s",
            b64encode(request.hash),
            b64encode(discloser),
            b64encode(request.recipient),
        )
        return disclosed

    def _party_key(self, envelope: Envelope) -> bytes:
        """The local key that speaks for this manager in ``envelope``: the sender's if
        local, else the first local key with a box."""
        if self.enclave.is_local(envelope.sender_key):
            return envelope.sender_key
        for key in envelope.recipient_keys:
            if self.enclave.is_local(key):
                return key
        raise NotFound(f"no local key is a party to transaction {b64encode(envelope.hash)}")

    async def sign_disclosure(self, request: SignDisclosureRequest) -> SignDisclosureResponse:
        """A local key's identity signs a disclosure digest (the default key's if no
        ``from``); ``BadRequest`` for a ``from`` that is not local."""
        key = self._sender(request.from_key)
        signer, signature = self.enclave.sign_disclosure(key, request.digest)
        return SignDisclosureResponse(key=key, signer=signer, signature=signature)

    # -- P2P ------------------------------------------------------------------------
    async def accept_push(
        self, envelopes: list[Envelope], claimed_hash: bytes | None = None
    ) -> list[bytes]:
        """Verify and store pushed envelopes, all or none; their hashes once durable.

        Refusals, each changing nothing: 422 ``HashMismatch`` if the announced
        hash is not the envelope's; 409 ``EnvelopeConflict`` (logged) if a copy of
        the same transaction or sealed payload is stored with another header, or
        the push would add a box outside the group; 422 ``DecryptionFailed`` /
        ``EnvelopeRejected`` naming the cryptographic check that failed.
        """
        for envelope in envelopes:
            if claimed_hash is not None and envelope.hash != claimed_hash:
                raise HashMismatch(
                    f"announced hash {b64encode(claimed_hash)} is not the envelope's hash "
                    f"{b64encode(envelope.hash)} (of its header and ciphertext)"
                )
        if _heavy(envelopes):
            failure = await self._off_loop(self._first_failure, envelopes)
        else:
            failure = self._first_failure(envelopes)
        if failure is not None:
            refused, error = failure
            await self._refuse_if_conflicting(refused)
            raise error
        try:
            await self.store.save_envelopes(envelopes)
        except EnvelopeConflict as exc:
            log.warning("refused a push: %s", exc.message)
            raise
        return [envelope.hash for envelope in envelopes]

    def _first_failure(self, envelopes: list[Envelope]) -> tuple[Envelope, TxManagerError] | None:
        """Verify every envelope (on a crypto thread); the first refused and why."""
        for envelope in envelopes:
            try:
                self.enclave.verify_incoming(envelope)
            except TxManagerError as exc:
                return envelope, exc
        return None

    async def _refuse_if_conflicting(self, envelope: Envelope) -> None:
        """409 if ``envelope`` is another version of a stored transaction, not mere garbage.

        Another version: the same sealed payload (ciphertext) with another header,
        recipient nonce or a box outside the group. A changed ciphertext is not a
        version of anything; it keeps its cryptographic refusal (422).
        """
        stored = await self.store.find_stored_copy(envelope)
        if stored is None or stored.cipher_text != envelope.cipher_text:
            return
        reason = stored.conflict_with(envelope)
        if reason is not None:
            conflict = EnvelopeConflict(b64encode(stored.hash), reason)
            log.warning("refused a push: %s", conflict.message)
            raise conflict

    @staticmethod
    def _copy_for(envelope: Envelope, key: bytes) -> Envelope | None:
        """What ``key``'s manager may get back: its own box, or every box if it sent it."""
        if envelope.sender_key == key:
            return envelope
        if key in envelope.recipient_keys:
            return envelope.for_recipients({key})
        return None

    async def resend_individual(self, request: ResendRequest) -> Envelope:
        if request.key is None:
            raise BadRequest("key is missing for an INDIVIDUAL resend")
        copy = self._copy_for(await self._find(request.key), request.public_key)
        if copy is None:
            raise NotFound(f"{b64encode(request.public_key)} is not a party to this transaction")
        return copy

    async def resend_all(self, public_key: bytes) -> int:
        """Push back every envelope ``public_key`` is a party to, to its validated URL."""
        url = self.registry.url_for(public_key)
        if url is None:
            raise NotFound(f"no validated manager URL for key {b64encode(public_key)}")
        pushed = 0
        after = b""
        while page := await self.store.page_envelopes(after, RESEND_PAGE):
            after = page[-1].hash
            copies = [c for c in (self._copy_for(e, public_key) for e in page) if c is not None]
            for batch in self._batches(copies):
                await self.peers.push_batch(url, batch)
                pushed += len(batch)
        return pushed

    def _batches(self, envelopes: list[Envelope]) -> list[list[Envelope]]:
        """Split so that each /pushBatch body stays under the receiver's size limit."""
        batches: list[list[Envelope]] = []
        current: list[Envelope] = []
        size = 0
        for envelope in envelopes:
            envelope_size = len(envelope.cipher_text) + 1024
            if current and size + envelope_size > self.batch_bytes:
                batches.append(current)
                current, size = [], 0
            current.append(envelope)
            size += envelope_size
        if current:
            batches.append(current)
        return batches

    @property
    def recovering(self) -> bool:
        """True from ``announce_recovery`` (or the start of ``recover``) until every
        peer's resend ALL has succeeded or failed."""
        return self._recoveries > 0

    def announce_recovery(self) -> None:
        """A recovery will start soon (``recover(announced=True)``): from now on, a
        payload not held is answered "recovering", not "not found"."""
        if self._recoveries == 0:
            self.recovery_received = 0
        self._recoveries += 1

    async def recover(self, *, announced: bool = False) -> int:
        """Ask every known peer to resend ALL for each local key; returns envelopes received.

        ``announced``: this is the recovery ``announce_recovery`` promised. Either way,
        ``recovering`` holds until every peer has answered or failed."""
        if not announced:
            self.announce_recovery()
        try:
            requests = [
                (url, ResendRequest(type="ALL", public_key=key))
                for url in self.registry.peers
                for key in self.enclave.public_keys
            ]
            results = await asyncio.gather(
                *(self._resend_from(url, request) for url, request in requests),
                return_exceptions=True,
            )
        finally:
            self._recoveries -= 1
        total = 0
        for (url, _), result in zip(requests, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("resend from %s failed: %s", url, result)
            else:
                total += result
        return total

    async def _resend_from(self, url: str, request: ResendRequest) -> int:
        received = await self.peers.resend(url, request)
        self.recovery_received += received
        return received


def _missing(message: str, recovering: bool) -> TxManagerError:
    """``NotFound`` ("not a party"), or ``Recovering`` while a recovery may still bring it."""
    if recovering:
        return Recovering(f"{message} yet: this manager is recovering from its peers")
    return NotFound(message)


def _heavy(envelopes: list[Envelope]) -> bool:
    """Whether verifying ``envelopes`` is worth a hop to a crypto thread."""
    if len(envelopes) > _OFFLOAD_ENVELOPES:
        return True
    return sum(len(envelope.cipher_text) for envelope in envelopes) > _OFFLOAD_BYTES
