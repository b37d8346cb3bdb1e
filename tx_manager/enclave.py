"""Keys and crypto, pure: no I/O, no logging. The only module that touches the manager's
private keys. The primitives it composes (X25519, HKDF, XChaCha20-Poly1305 and their
purpose labels) are in ``tx_manager.primitives``, so that code without a manager (the
node's offline check of a disclosure) derives exactly the same keys.

Scheme (ours, not NaCl's; see docs/tx-manager.md):
- payload: XChaCha20-Poly1305 under a fresh random 32-byte master key and
  24-byte nonce, with the encoded envelope header as associated data (version 2;
  see ``payload`` for the header, the key commitment and the hash);
- box for recipient R of sender S: XChaCha20-Poly1305 of the master key under
  HKDF-SHA256(X25519(S, R)), with one random recipient nonce per envelope.
  X25519 is symmetric, so S opens R's box with (S private, R public) and R with
  (R private, S public): a peer can give the sender back a box it lost.
- The HKDF ``info`` binds both public keys and a purpose label, so a box made for
  envelopes can never be replayed as a key-validation challenge and vice versa.
- keyed header binding: HMAC-SHA256 of (hash, terms) under HKDF-SHA256(master key).
- group commitments: each local key signs with an Ed25519 identity derived from its
  X25519 private key (``quorum_shared.commitments.identity_seed``); the binding tag
  that vouches for that identity towards another member is a MAC under a pairwise
  key of its own purpose label, derived and cached like box keys.

Every method may run on a worker thread: the only shared state, the cache of
derived pairwise keys, is a bounded LRU behind a lock.
"""

from __future__ import annotations

import hmac
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from Crypto.Hash import HMAC, SHA256

from quorum_shared import commitments
from quorum_shared.commitments import CommitmentClaim, GroupCommitment
from tx_manager.disclosure import (
    DISCLOSURE_INFO,
    DisclosedEnvelope,
    new_wrap_nonce,
    sign_disclosure_digest,
    wrap_key,
)
from tx_manager.errors import BadRequest, DecryptionFailed, EnvelopeRejected, NotFound
from tx_manager.payload import (
    NONCE_SIZE,
    EncodedPayload,
    EncodedPayloadV1,
    Envelope,
    EnvelopeHeader,
    ExecutionTerms,
    HeaderBinding,
    PrivacyMode,
    Raw,
    RawTransaction,
    RawTransactionV1,
    b64encode,
    key_commitment,
    transaction_hash,
)
from tx_manager.primitives import (
    BINDING_INFO,
    BOX_INFO,
    CHALLENGE_INFO,
    TERMS_MAC_INFO,
    KeyPair,
    generate_keypair,
    hkdf,
    keypair_from_private,
    pairwise_key,
    seal,
    unseal,
    x25519_shared,
)

__all__ = [
    "DEFAULT_DERIVED_KEY_CACHE",
    "MASTER_KEY_SIZE",
    "Enclave",
    "KeyPair",
    "SendMetadata",
    "generate_keypair",
    "keypair_from_private",
    "seal",
    "terms_mac",
    "unseal",
]

MASTER_KEY_SIZE = 32
DEFAULT_DERIVED_KEY_CACHE = 4096


def terms_mac(master_key: bytes, tx_hash: bytes, terms: ExecutionTerms) -> bytes:
    """The keyed binding: HMAC-SHA256(HKDF(master key), hash || encoded terms)."""
    mac = HMAC.new(hkdf(master_key, TERMS_MAC_INFO), digestmod=SHA256)
    mac.update(tx_hash)
    mac.update(terms.to_bytes())
    return mac.digest()


@dataclass(frozen=True)
class SendMetadata:
    """What GoQuorum's privacy flags add to an envelope; carried through untouched."""

    privacy_mode: PrivacyMode = PrivacyMode.STANDARD
    affected_contract_transactions: tuple[tuple[bytes, bytes], ...] = ()
    exec_hash: bytes = b""
    mandatory_recipients: tuple[bytes, ...] = ()

    def terms(self, sender: bytes, recipients: Iterable[bytes]) -> ExecutionTerms:
        return ExecutionTerms.build(
            sender,
            tuple(recipients),
            self.privacy_mode,
            self.mandatory_recipients,
            self.exec_hash,
            self.affected_contract_transactions,
        )


class Enclave:
    """Holds the local key pairs and a bounded cache of pairwise derived keys.

    A (local, remote) shared key never changes, and X25519 costs about 0.3 ms
    here, so each pair's derived keys are kept in memory, at most
    ``derived_key_cache`` of them (least recently used evicted first): remote
    keys come from the network, and must not grow memory without limit.
    """

    def __init__(
        self, keypairs: Sequence[KeyPair], derived_key_cache: int = DEFAULT_DERIVED_KEY_CACHE
    ) -> None:
        if not keypairs:
            raise BadRequest("a manager needs at least one key pair")
        if derived_key_cache < 1:
            raise BadRequest("the derived key cache needs room for at least one key")
        self._private: dict[bytes, bytes] = {kp.public: kp.private for kp in keypairs}
        self._public_keys = tuple(kp.public for kp in keypairs)
        self._derived: OrderedDict[tuple[bytes, bytes, bytes], bytes] = OrderedDict()
        self._derived_limit = derived_key_cache
        self._derived_lock = threading.Lock()
        # Identity seeds of the group commitments: one HKDF each, derived once here.
        self._identity_seeds = {kp.public: commitments.identity_seed(kp.private) for kp in keypairs}
        self._identities = {
            key: commitments.identity_public(seed) for key, seed in self._identity_seeds.items()
        }

    @property
    def public_keys(self) -> tuple[bytes, ...]:
        return self._public_keys

    @property
    def default_key(self) -> bytes:
        return self._public_keys[0]

    @property
    def derived_keys_cached(self) -> int:
        return len(self._derived)

    def is_local(self, public_key: bytes) -> bool:
        return public_key in self._private

    def _derive(self, local: bytes, remote: bytes, info: bytes) -> bytes:
        cache_key = (local, remote, info)
        with self._derived_lock:
            derived = self._derived.get(cache_key)
            if derived is not None:
                self._derived.move_to_end(cache_key)
                return derived
        private = self._private.get(local)
        if private is None:
            raise NotFound(f"key {b64encode(local)} is not held by this manager")
        derived = pairwise_key(x25519_shared(private, remote), info, local, remote)
        with self._derived_lock:
            self._derived[cache_key] = derived
            while len(self._derived) > self._derived_limit:
                self._derived.popitem(last=False)
        return derived

    def box_key(self, local: bytes, remote: bytes) -> bytes:
        return self._derive(local, remote, BOX_INFO)

    # -- sending ------------------------------------------------------------------------
    def encrypt(
        self,
        payload: bytes,
        sender: bytes,
        recipients: Iterable[bytes],
        metadata: SendMetadata = SendMetadata(),
    ) -> EncodedPayload:
        """Encrypt ``payload`` once (version 2, hashed header); box it for every party."""
        recipients = tuple(recipients)
        master_key = os.urandom(MASTER_KEY_SIZE)
        header = EnvelopeHeader(
            binding=HeaderBinding.HASHED,
            sender_key=sender,
            cipher_text_nonce=os.urandom(NONCE_SIZE),
            key_commitment=key_commitment(master_key),
            terms=metadata.terms(sender, recipients),
        )
        cipher_text = seal(master_key, header.cipher_text_nonce, payload, header.to_bytes())
        return self._boxed(header, cipher_text, master_key, os.urandom(NONCE_SIZE), recipients)

    def _boxes(
        self, sender: bytes, master_key: bytes, nonce: bytes, recipients: Iterable[bytes]
    ) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
        keys = tuple(dict.fromkeys([sender, *recipients]))
        return keys, tuple(seal(self.box_key(sender, key), nonce, master_key) for key in keys)

    def _boxed(
        self,
        header: EnvelopeHeader,
        cipher_text: bytes,
        master_key: bytes,
        recipient_nonce: bytes,
        recipients: Iterable[bytes],
        keyed_terms: ExecutionTerms | None = None,
    ) -> EncodedPayload:
        keys, boxes = self._boxes(header.sender_key, master_key, recipient_nonce, recipients)
        mac = b""
        if keyed_terms is not None:
            tx_hash = transaction_hash(header.to_bytes(), cipher_text)
            mac = terms_mac(master_key, tx_hash, keyed_terms)
        return EncodedPayload(
            header=header,
            cipher_text=cipher_text,
            recipient_nonce=recipient_nonce,
            recipient_keys=keys,
            recipient_boxes=boxes,
            keyed_terms=keyed_terms,
            terms_mac=mac,
        )

    def encrypt_raw(
        self,
        payload: bytes,
        sender: bytes,
        recipients: Iterable[bytes] | None = None,
        metadata: SendMetadata = SendMetadata(),
    ) -> RawTransaction:
        """Encrypt for ``/storeraw``: the master key is boxed to the sender alone.

        With ``recipients`` the terms are fixed now and hashed; without them the
        header is keyed and ``wrap_raw`` binds the terms named later.
        """
        master_key = os.urandom(MASTER_KEY_SIZE)
        hashed = recipients is not None
        header = EnvelopeHeader(
            binding=HeaderBinding.HASHED if hashed else HeaderBinding.KEYED,
            sender_key=sender,
            cipher_text_nonce=os.urandom(NONCE_SIZE),
            key_commitment=key_commitment(master_key),
            terms=metadata.terms(sender, recipients) if recipients is not None else None,
        )
        recipient_nonce = os.urandom(NONCE_SIZE)
        return RawTransaction(
            header=header,
            cipher_text=seal(master_key, header.cipher_text_nonce, payload, header.to_bytes()),
            sender_box=seal(self.box_key(sender, sender), recipient_nonce, master_key),
            recipient_nonce=recipient_nonce,
        )

    def wrap_raw(self, raw: Raw, recipients: Iterable[bytes], metadata: SendMetadata) -> Envelope:
        """Re-box a raw transaction's master key for ``recipients``; the hash stays the same.

        A hashed raw transaction must be sent to exactly the terms it fixed
        (``BadRequest`` naming the differences otherwise). The raw transaction's
        recipient nonce is reused, so wrapping twice for the same terms gives the
        same envelope (boxes of one key, nonce and plaintext are identical).
        """
        recipients = tuple(recipients)
        master_key = self._raw_master_key(raw)
        if isinstance(raw, RawTransactionV1):
            keys, boxes = self._boxes(raw.sender_key, master_key, raw.recipient_nonce, recipients)
            terms = metadata.terms(raw.sender_key, recipients)
            return EncodedPayloadV1(
                sender_key=raw.sender_key,
                cipher_text=raw.cipher_text,
                cipher_text_nonce=raw.cipher_text_nonce,
                recipient_boxes=boxes,
                recipient_nonce=raw.recipient_nonce,
                recipient_keys=keys,
                privacy_mode=terms.privacy_mode,
                affected_contract_transactions=terms.affected_contract_transactions,
                exec_hash=terms.exec_hash,
                mandatory_recipients=terms.mandatory_recipients,
                group_keys=terms.group_keys,
            )
        wanted = metadata.terms(raw.sender_key, recipients)
        if raw.header.terms is not None:
            changed = raw.header.terms.differences(wanted, "/storeraw", "/sendsignedtx")
            if changed:
                raise BadRequest(
                    "/sendsignedtx must name the recipients and privacy options /storeraw "
                    f"fixed; they differ in: {', '.join(changed)}"
                )
            return self._boxed(
                raw.header, raw.cipher_text, master_key, raw.recipient_nonce, recipients
            )
        return self._boxed(
            raw.header, raw.cipher_text, master_key, raw.recipient_nonce, recipients, wanted
        )

    def open_raw(self, raw: Raw) -> bytes:
        master_key = self._raw_master_key(raw)
        if isinstance(raw, RawTransactionV1):
            return unseal(master_key, raw.cipher_text_nonce, raw.cipher_text)
        _check_commitment(raw.header, master_key, "the sender's box")
        return unseal(master_key, raw.cipher_text_nonce, raw.cipher_text, raw.header_bytes)

    def _raw_master_key(self, raw: Raw) -> bytes:
        own_key = self.box_key(raw.sender_key, raw.sender_key)
        return unseal(own_key, raw.recipient_nonce, raw.sender_box)

    # -- receiving ----------------------------------------------------------------------
    def _box_pair(self, envelope: Envelope, box_key_owner: bytes) -> tuple[bytes, bytes] | None:
        """(local, remote) keys that open the box of ``box_key_owner``, or None if none can."""
        if self.is_local(box_key_owner):
            return box_key_owner, envelope.sender_key
        if self.is_local(envelope.sender_key):
            return envelope.sender_key, box_key_owner
        return None

    def _open_box(self, envelope: Envelope, pair: tuple[bytes, bytes], box: bytes) -> bytes:
        return unseal(self.box_key(*pair), envelope.recipient_nonce, box)

    def master_key(self, envelope: Envelope, as_key: bytes | None = None) -> bytes:
        """Open the first box a local key can open (only ``as_key``'s view if given)."""
        failure: DecryptionFailed | None = None
        for owner, box in zip(envelope.recipient_keys, envelope.recipient_boxes, strict=True):
            pair = self._box_pair(envelope, owner)
            if pair is None or (as_key is not None and as_key not in pair):
                continue
            try:
                return self._open_box(envelope, pair, box)
            except DecryptionFailed as exc:
                failure = exc
        if failure is not None:
            raise failure
        raise NotFound("no local key is a party to this transaction")

    def decrypt(self, envelope: Envelope, as_key: bytes | None = None) -> bytes:
        """The plaintext, after every check the envelope's version allows."""
        return self._open_payload(envelope, self.master_key(envelope, as_key))

    def _open_payload(self, envelope: Envelope, master_key: bytes) -> bytes:
        if isinstance(envelope, EncodedPayloadV1):
            return unseal(master_key, envelope.cipher_text_nonce, envelope.cipher_text)
        _check_commitment(envelope.header, master_key, "the box")
        if envelope.keyed_terms is not None:
            expected = terms_mac(master_key, envelope.hash, envelope.keyed_terms)
            if not hmac.compare_digest(expected, envelope.terms_mac):
                raise DecryptionFailed("the header MAC over the execution terms did not verify")
        try:
            return unseal(
                master_key, envelope.cipher_text_nonce, envelope.cipher_text, envelope.header_bytes
            )
        except DecryptionFailed as exc:
            raise DecryptionFailed(
                "the payload's AEAD tag did not verify with the header as associated data"
            ) from exc

    def verify_incoming(self, envelope: Envelope) -> None:
        """Check a pushed envelope; raises a typed error naming the first check that failed.

        Every box must belong to a key of the group (version 2), be openable by a
        local key and open; the master key inside must match the header's key
        commitment; the payload must decrypt with the header as associated data;
        a keyed header's MAC must verify. This authenticates the sender (only the
        holder of the sender's private key, or of ours, can make a box that opens)
        and the header, and refuses garbage before it is stored.
        """
        if not envelope.recipient_boxes:
            raise DecryptionFailed("the envelope carries no recipient box")
        group = set(envelope.parties) if isinstance(envelope, EncodedPayload) else None
        master_key: bytes | None = None
        for owner, box in zip(envelope.recipient_keys, envelope.recipient_boxes, strict=True):
            if group is not None and owner not in group:
                raise EnvelopeRejected(
                    f"box for {b64encode(owner)} is outside the authenticated group"
                )
            pair = self._box_pair(envelope, owner)
            if pair is None:
                raise DecryptionFailed(f"box for {b64encode(owner)} is not for a key held here")
            try:
                opened = self._open_box(envelope, pair, box)
            except DecryptionFailed as exc:
                raise DecryptionFailed(
                    f"box for {b64encode(owner)} did not open with this manager's key"
                ) from exc
            if isinstance(envelope, EncodedPayload):
                _check_commitment(envelope.header, opened, f"the box for {b64encode(owner)}")
            if master_key is None:
                master_key = opened
            elif not hmac.compare_digest(master_key, opened):
                raise DecryptionFailed("the boxes hold different master keys")
        if master_key is not None:
            self._open_payload(envelope, master_key)

    # -- remote key validation ----------------------------------------------------------
    def seal_challenge(self, local: bytes, remote: bytes, secret: bytes) -> tuple[bytes, bytes]:
        """Encrypt ``secret`` so that only the holder of ``remote``'s private key can read it."""
        nonce = os.urandom(NONCE_SIZE)
        return nonce, seal(self._derive(local, remote, CHALLENGE_INFO), nonce, secret)

    def open_challenge(self, local: bytes, remote: bytes, nonce: bytes, sealed: bytes) -> bytes:
        if len(nonce) != NONCE_SIZE:
            raise BadRequest(f"challenge nonce must be {NONCE_SIZE} bytes")
        return unseal(self._derive(local, remote, CHALLENGE_INFO), nonce, sealed)

    # -- group commitments ----------------------------------------------------------------
    @property
    def identities(self) -> dict[bytes, bytes]:
        """Each local manager key's Ed25519 identity (signer) public key."""
        return dict(self._identities)

    def sign_claim(self, claim: CommitmentClaim) -> GroupCommitment:
        """Sign ``claim`` with the identity of ``claim.member``, which must be a local key.

        Ed25519 is deterministic: the same claim always gives the same commitment.
        """
        seed = self._identity_seeds.get(claim.member)
        if seed is None:
            raise NotFound(f"key {b64encode(claim.member)} is not held by this manager")
        return commitments.sign(claim, seed)

    def binding_tag(self, local: bytes, remote: bytes, signer: bytes) -> bytes:
        """The tag that tells ``remote``'s holder that ``local``'s holder uses ``signer``."""
        shared = self._derive(local, remote, BINDING_INFO)
        return commitments.binding_tag(shared, local, signer)

    def check_binding(self, local: bytes, remote_member: bytes, signer: bytes, tag: bytes) -> bool:
        """Whether ``tag`` proves that ``remote_member``'s holder vouches for ``signer``.

        Only the holders of ``local`` and ``remote_member`` can compute it (X25519 is
        symmetric), and this manager never makes tags for a remote member.
        """
        shared = self._derive(local, remote_member, BINDING_INFO)
        expected = commitments.binding_tag(shared, remote_member, signer)
        return hmac.compare_digest(expected, tag)

    # -- disclosure -----------------------------------------------------------------------
    def disclose(self, envelope: Envelope, local_key: bytes, recipient: bytes) -> DisclosedEnvelope:
        """What ``recipient`` (any X25519 key) needs to open ``envelope`` and check it
        against its hash offline (``tx_manager.disclosure.open_disclosed``).

        ``local_key`` must be a local key that is a party (``NotFound`` otherwise). Only a
        version-2 envelope with hashed terms can be disclosed with proof (``BadRequest``
        otherwise); a bad ``recipient`` key is a ``BadRequest``.
        """
        if isinstance(envelope, EncodedPayloadV1) or envelope.keyed_terms is not None:
            raise BadRequest(
                "this transaction's execution terms are not under its hash (stored with "
                "/storeraw without recipients, or by a version-1 manager): it cannot be "
                "disclosed with proof"
            )
        signer = self._identities.get(local_key)
        if signer is None:
            raise NotFound(f"key {b64encode(local_key)} is not held by this manager")
        master_key = self.master_key(envelope, as_key=local_key)
        _check_commitment(envelope.header, master_key, "the box")
        nonce = new_wrap_nonce()
        wrapped = wrap_key(
            self._derive(local_key, recipient, DISCLOSURE_INFO), nonce, master_key, envelope.hash
        )
        return DisclosedEnvelope(
            header=envelope.header_bytes,
            cipher_text=envelope.cipher_text,
            discloser=local_key,
            recipient=recipient,
            wrapped_nonce=nonce,
            wrapped_key=wrapped,
            signer=signer,
            binding=self.binding_tag(local_key, recipient, signer),
        )

    def sign_disclosure(self, local_key: bytes, digest: bytes) -> tuple[bytes, bytes]:
        """(signer, signature): ``local_key``'s identity signs a 32-byte disclosure digest
        under ``tx_manager.disclosure.DISCLOSURE_DOMAIN``, never as a commitment."""
        seed = self._identity_seeds.get(local_key)
        if seed is None:
            raise NotFound(f"key {b64encode(local_key)} is not held by this manager")
        return sign_disclosure_digest(seed, digest)


def _check_commitment(header: EnvelopeHeader, master_key: bytes, where: str) -> None:
    if not hmac.compare_digest(key_commitment(master_key), header.key_commitment):
        raise DecryptionFailed(f"the key commitment does not match the master key in {where}")
