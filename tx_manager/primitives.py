"""The symmetric and Diffie-Hellman primitives of the manager's scheme, pure: no I/O, no
state, no key storage.

The enclave builds on these with its local keys and its cache of derived keys; code that
must open what the enclave sealed without holding a manager (the node's offline check of
a disclosure, ``tx_manager.disclosure``) builds on them with a key it is given. Both must
derive byte-for-byte the same keys, so the purpose labels (HKDF ``info``) live here too.

- ``x25519_shared``: the raw X25519 agreement; low-order and malformed keys refused.
- ``pairwise_key``: HKDF-SHA256 of that secret, with ``info`` = purpose label followed
  by both public keys in sorted order, so both ends derive the same key and a key made
  for one purpose is useless for any other.
- ``seal``/``unseal``: XChaCha20-Poly1305 (24-byte nonce, 16-byte tag appended).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from Crypto.Cipher import ChaCha20_Poly1305
from Crypto.Hash import SHA256
from Crypto.Protocol import DH
from Crypto.Protocol.KDF import HKDF

from tx_manager.errors import BadRequest, DecryptionFailed
from tx_manager.fields import KEY_SIZE, TAG_SIZE, b64encode

BOX_INFO = b"quorum-py/tx-manager/box/v1"
"""Purpose label of the pairwise key that seals an envelope's master key for a party."""
CHALLENGE_INFO = b"quorum-py/tx-manager/validate/v1"
"""Purpose label of the pairwise key of remote key validation challenges."""
TERMS_MAC_INFO = b"quorum-py/tx-manager/terms-mac/v2"
"""Purpose label of the key (derived from the master key) of a keyed header's MAC."""
BINDING_INFO = b"quorum-py/tx-manager/identity-binding/v1"
"""Purpose label of the pairwise key of identity binding tags (commitments, disclosures)."""


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


def seal(key: bytes, nonce: bytes, plaintext: bytes, associated_data: bytes = b"") -> bytes:
    cipher = ChaCha20_Poly1305.new(key=key, nonce=nonce)
    if associated_data:
        cipher.update(associated_data)
    body, tag = cipher.encrypt_and_digest(plaintext)
    return body + tag


def unseal(key: bytes, nonce: bytes, sealed: bytes, associated_data: bytes = b"") -> bytes:
    if len(sealed) < TAG_SIZE:
        raise DecryptionFailed("sealed data is shorter than its tag")
    cipher = ChaCha20_Poly1305.new(key=key, nonce=nonce)
    if associated_data:
        cipher.update(associated_data)
    try:
        return cipher.decrypt_and_verify(sealed[:-TAG_SIZE], sealed[-TAG_SIZE:])
    except ValueError as exc:
        raise DecryptionFailed("authentication tag did not verify") from exc


def hkdf(secret: bytes, info: bytes) -> bytes:
    """32 bytes of HKDF-SHA256 (empty salt) of ``secret`` for the purpose ``info``."""
    key = HKDF(secret, 32, b"", SHA256, context=info)
    if not isinstance(key, bytes):
        raise TypeError("HKDF returned several keys")
    return key


def x25519_shared(private: bytes, remote: bytes) -> bytes:
    """The X25519 agreement of ``private`` with the public key ``remote``.

    ``BadRequest`` if ``remote`` is not a valid X25519 key or is of low order (the
    secret would be all zeros, known to anyone).
    """
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
    return bytes(shared)


def pairwise_key(shared: bytes, info: bytes, key_a: bytes, key_b: bytes) -> bytes:
    """The key both holders of an agreement derive for ``info``: order of keys irrelevant."""
    low, high = sorted((key_a, key_b))
    return hkdf(shared, info + low + high)


def derive_pairwise(private: bytes, own_public: bytes, remote: bytes, info: bytes) -> bytes:
    """``pairwise_key`` computed from one side's private key, without any cache."""
    return pairwise_key(x25519_shared(private, remote), info, own_public, remote)
