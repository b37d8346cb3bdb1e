"""Disclosure of a past private transaction to a third party, with proof: the wire format
and the offline checks. Pure: no I/O, no clock, no manager keys (it does not import the
enclave, so the node's offline verifier can use it).

A party's manager hands a recipient (a regulator: any X25519 key, party or not) what it
needs to check, offline, that a payload is exactly the one whose 64-byte hash is on chain:

- the envelope's ``header`` and ``cipher_text``: they hash to the on-chain hash
  (``payload.transaction_hash``), and the header carries the execution terms (hashed
  binding) and the key commitment;
- the master key, ``wrapped_key`` for the recipient: XChaCha20-Poly1305 under the
  pairwise key of (``discloser``, ``recipient``) for ``DISCLOSURE_INFO``, with the
  payload hash as associated data, so a wrapped key cannot be moved to another
  transaction's bundle; the header's key commitment proves it is the committed key;
- ``signer``, the discloser's Ed25519 identity key (the one of its group commitments),
  and ``binding``: ``quorum_shared.commitments.binding_tag`` under the pairwise key of
  (``discloser``, ``recipient``) for ``primitives.BINDING_INFO`` (the commitments' label),
  which proves to the recipient that the holder of the discloser key vouches for
  ``signer``. Like every such tag it convinces the recipient only; what convinces
  others is a signature by ``signer`` (``disclosure_signed_bytes``).

What it does not prove: a keyed envelope (a Tessera-style ``/storeraw`` without
recipients) or a version-1 envelope has terms that are not under its hash, so the
manager refuses to disclose it and ``open_disclosed`` refuses it (step ``"terms"``).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from quorum_shared import commitments
from quorum_shared.json_fields import hex_bytes
from tx_manager.errors import (
    BadRequest,
    DecryptionFailed,
    DisclosureCheckFailed,
    DisclosureFormatError,
)
from tx_manager.fields import BOX_SIZE, HASH_SIZE, KEY_SIZE, NONCE_SIZE, TAG_SIZE
from tx_manager.payload import (
    EnvelopeHeader,
    ExecutionTerms,
    HeaderBinding,
    key_commitment,
    transaction_hash,
)
from tx_manager.primitives import (
    BINDING_INFO,
    derive_pairwise,
    keypair_from_private,
    seal,
    unseal,
)

__all__ = [
    "DISCLOSURE_DOMAIN",
    "DISCLOSURE_INFO",
    "DisclosedEnvelope",
    "DisclosureCheckFailed",
    "DisclosureFormatError",
    "OpenedPayload",
    "check_binding",
    "disclosure_signed_bytes",
    "open_disclosed",
    "sign_disclosure_digest",
    "unwrap_key",
    "verify_disclosure_signature",
    "wrap_key",
]

DISCLOSURE_INFO = b"quorum-py/tx-manager/disclosure/v1"
"""Purpose label of the pairwise key that wraps a disclosed master key."""
DISCLOSURE_DOMAIN = b"quorum-py disclosure v1\x00"
"""Signed before a disclosure digest. A commitment's signed bytes start with
``quorum-py group commitment v1\\0`` and are longer, so neither signature passes as the
other."""
DIGEST_SIZE = 32
SIGNER_SIZE = 32
SIGNATURE_SIZE = 64
BINDING_SIZE = 32

STEPS = ("envelope-hash", "terms", "key-unwrap", "key-commitment", "decrypt")
"""The checks of ``open_disclosed``, in the order it makes them."""


@dataclass(frozen=True)
class DisclosedEnvelope:
    """What a discloser's manager answers ``POST /disclose``; sizes checked on construction.

    JSON: ``{"header": b64, "cipherText": b64, "discloser": b64, "recipient": b64,
    "wrappedKey": {"nonce": b64, "box": b64}, "signer": "0x…", "binding": "0x…"}``.
    Unknown fields are ignored (a bundle may carry more beside these).
    """

    header: bytes  # the encoded envelope header, exactly as hashed
    cipher_text: bytes
    discloser: bytes  # the disclosing party's X25519 manager key
    recipient: bytes  # the X25519 key the master key is wrapped for
    wrapped_nonce: bytes  # 24 bytes
    wrapped_key: bytes  # 48 bytes: the sealed 32-byte master key and its tag
    signer: bytes  # the discloser's Ed25519 identity key
    binding: bytes  # 32 bytes: binding tag of (discloser, signer) for the recipient

    def __post_init__(self) -> None:
        for name, size in (
            ("discloser", KEY_SIZE),
            ("recipient", KEY_SIZE),
            ("wrapped_nonce", NONCE_SIZE),
            ("wrapped_key", BOX_SIZE),
            ("signer", SIGNER_SIZE),
            ("binding", BINDING_SIZE),
        ):
            value = getattr(self, name)
            if not isinstance(value, bytes) or len(value) != size:
                raise DisclosureFormatError(f"{name} must be {size} bytes")
        if not isinstance(self.header, bytes) or not self.header:
            raise DisclosureFormatError("header must be non-empty bytes")
        if not isinstance(self.cipher_text, bytes) or len(self.cipher_text) < TAG_SIZE:
            raise DisclosureFormatError("cipher_text is shorter than its tag")

    @property
    def payload_hash(self) -> bytes:
        """The hash the header and ciphertext yield (to compare with the one on chain)."""
        return transaction_hash(self.header, self.cipher_text)

    def to_json(self) -> dict[str, Any]:
        return {
            "header": _b64(self.header),
            "cipherText": _b64(self.cipher_text),
            "discloser": _b64(self.discloser),
            "recipient": _b64(self.recipient),
            "wrappedKey": {"nonce": _b64(self.wrapped_nonce), "box": _b64(self.wrapped_key)},
            "signer": "0x" + self.signer.hex(),
            "binding": "0x" + self.binding.hex(),
        }

    @classmethod
    def from_json(cls, obj: object) -> DisclosedEnvelope:
        body = _object(obj, "a disclosed envelope")
        wrapped = _object(_field(body, "wrappedKey"), "wrappedKey")
        return cls(
            header=_from_b64(body, "header"),
            cipher_text=_from_b64(body, "cipherText"),
            discloser=_from_b64(body, "discloser", KEY_SIZE),
            recipient=_from_b64(body, "recipient", KEY_SIZE),
            wrapped_nonce=_from_b64(wrapped, "nonce", NONCE_SIZE, "wrappedKey.nonce"),
            wrapped_key=_from_b64(wrapped, "box", BOX_SIZE, "wrappedKey.box"),
            signer=_from_hex(body, "signer", SIGNER_SIZE),
            binding=_from_hex(body, "binding", BINDING_SIZE),
        )

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json(), separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> DisclosedEnvelope:
        try:
            obj = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise DisclosureFormatError("a disclosed envelope is not valid JSON") from exc
        return cls.from_json(obj)


@dataclass(frozen=True)
class OpenedPayload:
    """A disclosed payload that passed every check, with the terms its hash fixes."""

    payload: bytes
    terms: ExecutionTerms  # group keys, privacy flag, mandatory recipients, exec hash, ...
    sender: bytes  # the X25519 key of the party that sent the transaction


def wrap_key(pairwise: bytes, nonce: bytes, master_key: bytes, payload_hash: bytes) -> bytes:
    """The master key sealed under ``pairwise`` (the ``DISCLOSURE_INFO`` key of discloser
    and recipient), bound to ``payload_hash``."""
    return seal(pairwise, nonce, master_key, payload_hash)


def unwrap_key(pairwise: bytes, nonce: bytes, wrapped: bytes, payload_hash: bytes) -> bytes:
    """``wrap_key`` reversed; ``DecryptionFailed`` if it does not open."""
    return unseal(pairwise, nonce, wrapped, payload_hash)


def new_wrap_nonce() -> bytes:
    return os.urandom(NONCE_SIZE)


def open_disclosed(
    recipient_private: bytes, payload_hash: bytes, disclosed: DisclosedEnvelope
) -> OpenedPayload:
    """The payload of ``disclosed``, after every check that ties it to ``payload_hash``.

    ``payload_hash`` is the 64-byte hash taken from the chain, not from the bundle.
    Raises ``DisclosureCheckFailed`` whose ``step`` names the first check that failed:

    - ``envelope-hash``: header and ciphertext do not hash to ``payload_hash``;
    - ``terms``: the header does not decode, or its terms are not under the hash (keyed);
    - ``key-unwrap``: the wrapped key does not open with ``recipient_private`` and the
      discloser's public key (wrong recipient, tampered, or wrapped for another hash);
    - ``key-commitment``: the unwrapped key is not the one the header commits to;
    - ``decrypt``: the ciphertext does not open under that key with the header as AD.

    Who vouches for the signer is a separate check (``check_binding``).
    """
    if len(payload_hash) != HASH_SIZE:
        raise DisclosureFormatError(f"payload hash must be {HASH_SIZE} bytes")
    if not hmac.compare_digest(disclosed.payload_hash, payload_hash):
        raise DisclosureCheckFailed(
            "envelope-hash", "the header and ciphertext do not hash to the payload hash"
        )
    try:
        header = EnvelopeHeader.from_bytes(disclosed.header)
    except BadRequest as exc:
        raise DisclosureCheckFailed(
            "terms", f"the header does not decode as a version-2 header: {exc.message}"
        ) from exc
    if header.binding is not HeaderBinding.HASHED or header.terms is None:
        raise DisclosureCheckFailed(
            "terms",
            "the execution terms are not under the hash (keyed header binding): "
            "the payload cannot be tied to its group with proof",
        )
    master_key = _unwrap(recipient_private, payload_hash, disclosed)
    if not hmac.compare_digest(key_commitment(master_key), header.key_commitment):
        raise DisclosureCheckFailed(
            "key-commitment", "the unwrapped key is not the key the header commits to"
        )
    try:
        payload = unseal(
            master_key, header.cipher_text_nonce, disclosed.cipher_text, disclosed.header
        )
    except DecryptionFailed as exc:
        raise DisclosureCheckFailed(
            "decrypt", "the ciphertext does not open under the committed key and the header"
        ) from exc
    return OpenedPayload(payload=payload, terms=header.terms, sender=header.sender_key)


def _unwrap(recipient_private: bytes, payload_hash: bytes, disclosed: DisclosedEnvelope) -> bytes:
    try:
        recipient = keypair_from_private(recipient_private)
    except (BadRequest, ValueError) as exc:
        raise DisclosureCheckFailed("key-unwrap", "the recipient private key is invalid") from exc
    if recipient.public != disclosed.recipient:
        raise DisclosureCheckFailed(
            "key-unwrap", "the key is wrapped for another recipient than this private key's"
        )
    try:
        pairwise = derive_pairwise(
            recipient_private, recipient.public, disclosed.discloser, DISCLOSURE_INFO
        )
        master_key = unwrap_key(
            pairwise, disclosed.wrapped_nonce, disclosed.wrapped_key, payload_hash
        )
    except (BadRequest, DecryptionFailed) as exc:
        raise DisclosureCheckFailed(
            "key-unwrap",
            "the wrapped key does not open with the recipient's key, the discloser's key "
            "and this payload hash",
        ) from exc
    return master_key


def check_binding(recipient_private: bytes, disclosed: DisclosedEnvelope) -> bool:
    """Whether ``disclosed.binding`` proves to the recipient that the holder of
    ``disclosed.discloser`` vouches for ``disclosed.signer``.

    Only the holders of the discloser's or the recipient's private key can compute the
    tag; the recipient never makes one for a discloser, so a valid tag came from the
    discloser's manager. False for any key that is not the recipient's.
    """
    try:
        recipient = keypair_from_private(recipient_private)
        if recipient.public != disclosed.recipient:
            return False
        shared = derive_pairwise(
            recipient_private, recipient.public, disclosed.discloser, BINDING_INFO
        )
    except (BadRequest, ValueError):
        return False
    expected = commitments.binding_tag(shared, disclosed.discloser, disclosed.signer)
    return hmac.compare_digest(expected, disclosed.binding)


def disclosure_signed_bytes(digest: bytes) -> bytes:
    """The exact bytes a disclosure signature covers: ``DISCLOSURE_DOMAIN`` + the digest."""
    if not isinstance(digest, bytes) or len(digest) != DIGEST_SIZE:
        raise DisclosureFormatError(f"a disclosure digest must be {DIGEST_SIZE} bytes")
    return DISCLOSURE_DOMAIN + digest


def sign_disclosure_digest(identity_seed: bytes, digest: bytes) -> tuple[bytes, bytes]:
    """(signer, signature): Ed25519 of ``disclosure_signed_bytes(digest)`` with the
    identity whose seed is ``identity_seed`` (``commitments.identity_seed``)."""
    private = Ed25519PrivateKey.from_private_bytes(identity_seed)
    signer = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return signer, private.sign(disclosure_signed_bytes(digest))


def verify_disclosure_signature(signer: bytes, signature: bytes, digest: bytes) -> bool:
    """Whether ``signer`` signed ``digest`` as a disclosure (never true for a commitment)."""
    try:
        signed = disclosure_signed_bytes(digest)
        Ed25519PublicKey.from_public_bytes(signer).verify(signature, signed)
    except (InvalidSignature, ValueError, DisclosureFormatError):
        return False
    return True


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _object(obj: object, what: str) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping):
        raise DisclosureFormatError(f"{what} must be a JSON object")
    return obj


def _field(body: Mapping[str, Any], name: str, label: str | None = None) -> Any:
    if name not in body:
        raise DisclosureFormatError(f"{label or name} is missing")
    return body[name]


def _from_b64(
    body: Mapping[str, Any], name: str, size: int | None = None, label: str | None = None
) -> bytes:
    label = label or name
    value = _field(body, name, label)
    if not isinstance(value, str):
        raise DisclosureFormatError(f"{label} must be a base64 string")
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise DisclosureFormatError(f"{label} is not valid base64") from None
    if size is not None and len(decoded) != size:
        raise DisclosureFormatError(f"{label} must be {size} bytes, got {len(decoded)}")
    return decoded


def _from_hex(body: Mapping[str, Any], name: str, size: int) -> bytes:
    return hex_bytes(_field(body, name), name, size, DisclosureFormatError)
