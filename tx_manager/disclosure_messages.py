"""JSON messages of the disclosure endpoints (Q2T ``POST /disclose``,
``POST /disclosures/sign``), as frozen dataclasses in the style of ``messages``.

``POST /disclose`` answers ``tx_manager.disclosure.DisclosedEnvelope.to_json`` as is.
Manager keys and hashes are standard base64 (Tessera's); the digest, signer and
signature are ``0x`` hex (as in group commitments). Parsing raises ``BadRequest``
naming the field at fault.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tx_manager.disclosure import DIGEST_SIZE, SIGNATURE_SIZE, SIGNER_SIZE
from tx_manager.errors import BadRequest
from tx_manager.fields import hex_field
from tx_manager.messages import JsonMessage, parse_key
from tx_manager.payload import HASH_SIZE, b64decode, b64encode


def _object(obj: object, what: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise BadRequest(f"{what} must be a JSON object")
    return obj


def _optional_key(body: dict[str, Any], name: str) -> bytes | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    return parse_key(value, name)


@dataclass(frozen=True)
class DiscloseRequest(JsonMessage):
    """``POST /disclose {hash, recipient, from?}``: wrap the master key of the transaction
    ``hash`` for ``recipient``; ``from`` picks the disclosing local key (default: the local
    key that is a party, the sender's first)."""

    hash: bytes
    recipient: bytes
    from_key: bytes | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "hash": b64encode(self.hash),
            "recipient": b64encode(self.recipient),
        }
        if self.from_key is not None:
            body["from"] = b64encode(self.from_key)
        return body

    @classmethod
    def from_json(cls, obj: object) -> DiscloseRequest:
        body = _object(obj, "disclose request")
        tx_hash = b64decode(body.get("hash"), "hash")
        if len(tx_hash) != HASH_SIZE:
            raise BadRequest(f"hash must be a base64 {HASH_SIZE}-byte hash")
        return cls(
            hash=tx_hash,
            recipient=parse_key(body.get("recipient"), "recipient"),
            from_key=_optional_key(body, "from"),
        )


@dataclass(frozen=True)
class SignDisclosureRequest(JsonMessage):
    """``POST /disclosures/sign {digest, from?}``: sign a 32-byte disclosure digest with
    the identity of ``from`` (default: the manager's first key)."""

    digest: bytes
    from_key: bytes | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"digest": "0x" + self.digest.hex()}
        if self.from_key is not None:
            body["from"] = b64encode(self.from_key)
        return body

    @classmethod
    def from_json(cls, obj: object) -> SignDisclosureRequest:
        body = _object(obj, "disclosure signing request")
        return cls(
            digest=hex_field(body, "digest", DIGEST_SIZE), from_key=_optional_key(body, "from")
        )


@dataclass(frozen=True)
class SignDisclosureResponse(JsonMessage):
    """``{key, signer, signature}``: the manager key, its Ed25519 identity, the signature
    over ``tx_manager.disclosure.disclosure_signed_bytes(digest)``."""

    key: bytes
    signer: bytes
    signature: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "key": b64encode(self.key),
            "signer": "0x" + self.signer.hex(),
            "signature": "0x" + self.signature.hex(),
        }

    @classmethod
    def from_json(cls, obj: object) -> SignDisclosureResponse:
        body = _object(obj, "disclosure signature")
        return cls(
            key=parse_key(body.get("key"), "key"),
            signer=hex_field(body, "signer", SIGNER_SIZE),
            signature=hex_field(body, "signature", SIGNATURE_SIZE),
        )
