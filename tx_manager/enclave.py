"""Keys and crypto, pure: no I/O, no logging. The only module that touches private keys.

Scheme (ours, not NaCl's; see the README):
- payload: XChaCha20-Poly1305 under a fresh random 32-byte master key and 24-byte nonce;
- box for recipient R of sender S: XChaCha20-Poly1305 of the master key under
  HKDF-SHA256(X25519(S, R)), with one random recipient nonce per envelope.
  X25519 is symmetric, so S opens R's box with (S private, R public) and R with
  (R private, S public): a peer can give the sender back a box it lost.
- The HKDF ``info`` binds both public keys and a purpose label, so a box made for
  envelopes can never be replayed as a key-validation challenge and vice versa.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from Crypto.Cipher import ChaCha20_Poly1305
from Crypto.Hash import SHA256
from Crypto.Protocol import DH
from Crypto.Protocol.KDF import HKDF

from tx_manager.errors import BadRequest, DecryptionFailed, NotFound
from tx_manager.payload import (
    KEY_SIZE,
    NONCE_SIZE,
    TAG_SIZE,
    EncodedPayload,
    PrivacyMode,
    RawTransaction,
    b64encode,
)

_BOX_INFO = b"quorum-py/tx-manager/box/v1"
_CHALLENGE_INFO = b"quorum-py/tx-manager/validate/v1"


@dataclass(frozen=True)
class KeyPair:
    """An X25519 key pair as raw 32-byte strings; ``repr`` never shows the private half."""

    public: bytes
    private: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.public) != KEY_SIZE or len(self.private) != KEY_SIZE:
            raise BadRequest("X25519 keys are 32 bytes")


def generate_keypair() -> KeyPair:
    return keypair_from_private(os.urandom(KEY_SIZE))


def keypair_from_private(private: bytes) -> KeyPair:
    key = DH.import_x25519_private_key(private)
    return KeyPair(public=key.public_key().export_key(format="raw"), private=private)


def seal(key: bytes, nonce: bytes, plaintext: bytes) -> bytes:
    cipher = ChaCha20_Poly1305.new(key=key, nonce=nonce)
    body, tag = cipher.encrypt_and_digest(plaintext)
    return body + tag


def unseal(key: bytes, nonce: bytes, sealed: bytes) -> bytes:
    if len(sealed) < TAG_SIZE:
        raise DecryptionFailed("sealed data is shorter than its tag")
    cipher = ChaCha20_Poly1305.new(key=key, nonce=nonce)
    try:
        return cipher.decrypt_and_verify(sealed[:-TAG_SIZE], sealed[-TAG_SIZE:])
    except ValueError as exc:
        raise DecryptionFailed("authentication tag did not verify") from exc


@dataclass(frozen=True)
class SendMetadata:
    """What GoQuorum's privacy flags add to an envelope; carried through untouched."""

    privacy_mode: PrivacyMode = PrivacyMode.STANDARD
    affected_contract_transactions: tuple[tuple[bytes, bytes], ...] = ()
    exec_hash: bytes = b""
    mandatory_recipients: tuple[bytes, ...] = ()


class Enclave:
    """Holds the local key pairs and the cache of pairwise shared keys.

    A (local, remote) shared key never changes, and X25519 costs about 0.3 ms
    here, so each pair's derived keys are computed once and kept in memory.
    """

    def __init__(self, keypairs: Sequence[KeyPair]) -> None:
        if not keypairs:
            raise BadRequest("a manager needs at least one key pair")
        self._private: dict[bytes, bytes] = {kp.public: kp.private for kp in keypairs}
        self._public_keys = tuple(kp.public for kp in keypairs)
        self._derived: dict[tuple[bytes, bytes, bytes], bytes] = {}

    @property
    def public_keys(self) -> tuple[bytes, ...]:
        return self._public_keys

    @property
    def default_key(self) -> bytes:
        return self._public_keys[0]

    def is_local(self, public_key: bytes) -> bool:
        return public_key in self._private

    def _derive(self, local: bytes, remote: bytes, info: bytes) -> bytes:
        cache_key = (local, remote, info)
        derived = self._derived.get(cache_key)
        if derived is None:
            private = self._private.get(local)
            if private is None:
                raise NotFound(f"key {b64encode(local)} is not held by this manager")
            try:
                shared = DH.key_agreement(
                    static_priv=DH.import_x25519_private_key(private),
                    static_pub=DH.import_x25519_public_key(remote),
                    kdf=lambda secret: secret,
                )
            except ValueError as exc:
                raise BadRequest(f"{b64encode(remote)} is not a valid X25519 key") from exc
            if shared == bytes(len(shared)):
                raise BadRequest(f"{b64encode(remote)} is a low-order X25519 key")
            low, high = sorted((local, remote))
            key = HKDF(bytes(shared), 32, b"", SHA256, context=info + low + high)
            if not isinstance(key, bytes):
                raise TypeError("HKDF returned several keys")
            self._derived[cache_key] = derived = key
        return derived

    def box_key(self, local: bytes, remote: bytes) -> bytes:
        return self._derive(local, remote, _BOX_INFO)

    def encrypt(
        self,
        payload: bytes,
        sender: bytes,
        recipients: Iterable[bytes],
        metadata: SendMetadata = SendMetadata(),
    ) -> EncodedPayload:
        """Encrypt ``payload`` once and box its master key for every recipient and the sender."""
        master_key = os.urandom(32)
        nonce = os.urandom(NONCE_SIZE)
        cipher_text = seal(master_key, nonce, payload)
        return self._wrap(sender, cipher_text, nonce, master_key, recipients, metadata)

    def _wrap(
        self,
        sender: bytes,
        cipher_text: bytes,
        nonce: bytes,
        master_key: bytes,
        recipients: Iterable[bytes],
        metadata: SendMetadata,
    ) -> EncodedPayload:
        keys = list(dict.fromkeys([sender, *recipients]))
        recipient_nonce = os.urandom(NONCE_SIZE)
        boxes = tuple(seal(self.box_key(sender, key), recipient_nonce, master_key) for key in keys)
        return EncodedPayload(
            sender_key=sender,
            cipher_text=cipher_text,
            cipher_text_nonce=nonce,
            recipient_boxes=boxes,
            recipient_nonce=recipient_nonce,
            recipient_keys=tuple(keys),
            privacy_mode=metadata.privacy_mode,
            affected_contract_transactions=metadata.affected_contract_transactions,
            exec_hash=metadata.exec_hash,
            mandatory_recipients=metadata.mandatory_recipients,
            group_keys=tuple(sorted(set(keys))),
        )

    def encrypt_raw(self, payload: bytes, sender: bytes) -> RawTransaction:
        """Encrypt for ``/storeraw``: the master key is boxed to the sender alone."""
        master_key = os.urandom(32)
        nonce = os.urandom(NONCE_SIZE)
        recipient_nonce = os.urandom(NONCE_SIZE)
        return RawTransaction(
            sender_key=sender,
            cipher_text=seal(master_key, nonce, payload),
            cipher_text_nonce=nonce,
            sender_box=seal(self.box_key(sender, sender), recipient_nonce, master_key),
            recipient_nonce=recipient_nonce,
        )

    def wrap_raw(
        self, raw: RawTransaction, recipients: Iterable[bytes], metadata: SendMetadata
    ) -> EncodedPayload:
        """Re-box a raw transaction's master key for ``recipients``; the hash stays the same."""
        return self._wrap(
            raw.sender_key,
            raw.cipher_text,
            raw.cipher_text_nonce,
            self._raw_master_key(raw),
            recipients,
            metadata,
        )

    def open_raw(self, raw: RawTransaction) -> bytes:
        return unseal(self._raw_master_key(raw), raw.cipher_text_nonce, raw.cipher_text)

    def _raw_master_key(self, raw: RawTransaction) -> bytes:
        own_key = self.box_key(raw.sender_key, raw.sender_key)
        return unseal(own_key, raw.recipient_nonce, raw.sender_box)

    def _box_pair(
        self, envelope: EncodedPayload, box_key_owner: bytes
    ) -> tuple[bytes, bytes] | None:
        """(local, remote) keys that open the box of ``box_key_owner``, or None if none can."""
        if self.is_local(box_key_owner):
            return box_key_owner, envelope.sender_key
        if self.is_local(envelope.sender_key):
            return envelope.sender_key, box_key_owner
        return None

    def master_key(self, envelope: EncodedPayload, as_key: bytes | None = None) -> bytes:
        """Open the first box a local key can open (only ``as_key``'s view if given)."""
        failure: DecryptionFailed | None = None
        for owner, box in zip(envelope.recipient_keys, envelope.recipient_boxes, strict=True):
            pair = self._box_pair(envelope, owner)
            if pair is None or (as_key is not None and as_key not in pair):
                continue
            try:
                return unseal(self.box_key(*pair), envelope.recipient_nonce, box)
            except DecryptionFailed as exc:
                failure = exc
        if failure is not None:
            raise failure
        raise NotFound("no local key is a party to this transaction")

    def decrypt(self, envelope: EncodedPayload, as_key: bytes | None = None) -> bytes:
        master_key = self.master_key(envelope, as_key)
        return unseal(master_key, envelope.cipher_text_nonce, envelope.cipher_text)

    def verify_incoming(self, envelope: EncodedPayload) -> None:
        """Check a pushed envelope: every box opens with a local key and decrypts the ciphertext.

        This authenticates the sender (only the holder of the sender's private key,
        or of ours, can make a box that opens) and refuses garbage before it is stored.
        """
        if not envelope.recipient_boxes:
            raise DecryptionFailed("the envelope carries no recipient box")
        for owner, box in zip(envelope.recipient_keys, envelope.recipient_boxes, strict=True):
            pair = self._box_pair(envelope, owner)
            if pair is None:
                raise DecryptionFailed(f"box for {b64encode(owner)} is not for a key held here")
            master_key = unseal(self.box_key(*pair), envelope.recipient_nonce, box)
            unseal(master_key, envelope.cipher_text_nonce, envelope.cipher_text)

    def seal_challenge(self, local: bytes, remote: bytes, secret: bytes) -> tuple[bytes, bytes]:
        """Encrypt ``secret`` so that only the holder of ``remote``'s private key can read it."""
        nonce = os.urandom(NONCE_SIZE)
        return nonce, seal(self._derive(local, remote, _CHALLENGE_INFO), nonce, secret)

    def open_challenge(self, local: bytes, remote: bytes, nonce: bytes, sealed: bytes) -> bytes:
        if len(nonce) != NONCE_SIZE:
            raise BadRequest(f"challenge nonce must be {NONCE_SIZE} bytes")
        return unseal(self._derive(local, remote, _CHALLENGE_INFO), nonce, sealed)
