"""The envelope (Tessera's EncodedPayload) and the raw transaction, as wire types.

An envelope is what a manager stores and pushes: the AEAD ciphertext of one
payload plus the master key sealed once per recipient ("box"). Before a push
the sender cuts it down to the receiver's own box, but every copy keeps the
full, sorted list of the party group's keys (``group_keys``) so that every
party can compute the same privacy group id.

Binary format v1 (see ``codec``): magic ``QTME``, version byte, then sender
key (32), ciphertext, ciphertext nonce, boxes, recipient nonce, recipient
keys, privacy mode (1 byte), affected contract transactions (flat list of
hash, security-hash pairs), exec hash, mandatory recipients, group keys,
then a CRC32. Once data is stored in this format, keep a frozen copy of this
decoder in the tests before changing it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Any

from tx_manager.codec import FrameReader, FrameWriter
from tx_manager.errors import BadRequest, EnvelopeDecodeError

KEY_SIZE = 32
NONCE_SIZE = 24
TAG_SIZE = 16
BOX_SIZE = KEY_SIZE + TAG_SIZE
HASH_SIZE = 64

ENVELOPE_MAGIC = b"QTME"
RAW_MAGIC = b"QTMR"
ENVELOPE_VERSION = 1
RAW_VERSION = 1


class PrivacyMode(IntEnum):
    """GoQuorum's privacyFlag values; any other value is refused."""

    STANDARD = 0
    PARTY_PROTECTION = 1
    MANDATORY_RECIPIENTS = 2
    PRIVATE_STATE_VALIDATION = 3


def b64encode(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def b64decode(value: object, what: str) -> bytes:
    """Strict standard base64 (as Tessera's JSON uses); typed error on anything else."""
    if not isinstance(value, str):
        raise BadRequest(f"{what} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"{what} is not valid base64") from exc


def transaction_hash(cipher_text: bytes) -> bytes:
    """The 64-byte key of an envelope: SHA3-512 of its ciphertext."""
    return hashlib.sha3_512(cipher_text).digest()


def privacy_group_id(keys: list[bytes] | tuple[bytes, ...]) -> bytes:
    """Id of the party group privateFrom ∪ privateFor: SHA3-256 of the sorted, deduplicated keys.

    The node uses this same function, so both sides agree on group ids.
    """
    return hashlib.sha3_256(b"".join(sorted(set(keys)))).digest()


def _check_key(key: bytes, what: str) -> None:
    if len(key) != KEY_SIZE:
        raise EnvelopeDecodeError(f"{what} must be {KEY_SIZE} bytes, got {len(key)}")


@dataclass(frozen=True)
class EncodedPayload:
    """One private payload, encrypted; every field is checked on construction."""

    sender_key: bytes
    cipher_text: bytes
    cipher_text_nonce: bytes
    recipient_boxes: tuple[bytes, ...]
    recipient_nonce: bytes
    recipient_keys: tuple[bytes, ...]
    privacy_mode: PrivacyMode = PrivacyMode.STANDARD
    affected_contract_transactions: tuple[tuple[bytes, bytes], ...] = ()
    exec_hash: bytes = b""
    mandatory_recipients: tuple[bytes, ...] = ()
    group_keys: tuple[bytes, ...] = ()
    version: int = field(default=ENVELOPE_VERSION)

    def __post_init__(self) -> None:
        if self.version != ENVELOPE_VERSION:
            raise EnvelopeDecodeError(f"envelope version {self.version} is not supported")
        _check_key(self.sender_key, "sender key")
        if len(self.cipher_text) < TAG_SIZE:
            raise EnvelopeDecodeError("ciphertext is shorter than its tag")
        for nonce, what in (
            (self.cipher_text_nonce, "ciphertext"),
            (self.recipient_nonce, "recipient"),
        ):
            if len(nonce) != NONCE_SIZE:
                raise EnvelopeDecodeError(f"{what} nonce must be {NONCE_SIZE} bytes")
        if len(self.recipient_boxes) != len(self.recipient_keys):
            raise EnvelopeDecodeError(
                f"{len(self.recipient_boxes)} boxes for {len(self.recipient_keys)} recipient keys"
            )
        if len(set(self.recipient_keys)) != len(self.recipient_keys):
            raise EnvelopeDecodeError("recipient keys repeat")
        for box in self.recipient_boxes:
            if len(box) != BOX_SIZE:
                raise EnvelopeDecodeError(f"recipient box must be {BOX_SIZE} bytes")
        for key in (*self.recipient_keys, *self.mandatory_recipients, *self.group_keys):
            _check_key(key, "recipient key")
        if list(self.group_keys) != sorted(set(self.group_keys)):
            raise EnvelopeDecodeError("group keys must be sorted and unique")
        if not isinstance(self.privacy_mode, PrivacyMode):
            object.__setattr__(self, "privacy_mode", parse_privacy_mode(self.privacy_mode))
        for pair in self.affected_contract_transactions:
            if len(pair) != 2 or len(pair[0]) != HASH_SIZE:
                raise EnvelopeDecodeError("affected contract transaction hash must be 64 bytes")
        if len({h for h, _ in self.affected_contract_transactions}) != len(
            self.affected_contract_transactions
        ):
            raise EnvelopeDecodeError("affected contract transactions repeat a hash")

    @property
    def hash(self) -> bytes:
        return transaction_hash(self.cipher_text)

    @property
    def parties(self) -> tuple[bytes, ...]:
        """Every key of the group: the full list when known, else sender and box holders."""
        if self.group_keys:
            return self.group_keys
        return tuple(sorted({self.sender_key, *self.recipient_keys}))

    def for_recipients(self, keys: set[bytes]) -> EncodedPayload:
        """The copy pushed to one manager: only the boxes of ``keys``, the group list intact."""
        pairs = [
            (k, b)
            for k, b in zip(self.recipient_keys, self.recipient_boxes, strict=True)
            if k in keys
        ]
        return replace(
            self,
            recipient_keys=tuple(k for k, _ in pairs),
            recipient_boxes=tuple(b for _, b in pairs),
        )

    def merged_with(self, other: EncodedPayload) -> EncodedPayload:
        """This envelope plus the boxes of ``other`` it lacks (a second push of the same hash)."""
        if other.cipher_text != self.cipher_text or other.sender_key != self.sender_key:
            raise EnvelopeDecodeError("cannot merge envelopes of different transactions")
        keys = list(self.recipient_keys)
        boxes = list(self.recipient_boxes)
        for key, box in zip(other.recipient_keys, other.recipient_boxes, strict=True):
            if key not in keys:
                keys.append(key)
                boxes.append(box)
        group = tuple(sorted(set(self.group_keys) | set(other.group_keys)))
        return replace(
            self, recipient_keys=tuple(keys), recipient_boxes=tuple(boxes), group_keys=group
        )

    def to_bytes(self) -> bytes:
        writer = FrameWriter(ENVELOPE_MAGIC, self.version)
        writer.fixed(self.sender_key)
        writer.blob(self.cipher_text)
        writer.fixed(self.cipher_text_nonce)
        writer.blobs(self.recipient_boxes)
        writer.fixed(self.recipient_nonce)
        writer.blobs(self.recipient_keys)
        writer.fixed(bytes([int(self.privacy_mode)]))
        writer.blobs([part for pair in self.affected_contract_transactions for part in pair])
        writer.blob(self.exec_hash)
        writer.blobs(self.mandatory_recipients)
        writer.blobs(self.group_keys)
        return writer.finish()

    @classmethod
    def from_bytes(cls, data: bytes) -> EncodedPayload:
        reader = FrameReader(data, ENVELOPE_MAGIC, "envelope")
        if reader.version != ENVELOPE_VERSION:
            raise EnvelopeDecodeError(f"envelope version {reader.version} is not supported")
        sender_key = reader.fixed(KEY_SIZE)
        cipher_text = reader.blob()
        cipher_text_nonce = reader.fixed(NONCE_SIZE)
        boxes = reader.blobs()
        recipient_nonce = reader.fixed(NONCE_SIZE)
        keys = reader.blobs()
        mode = parse_privacy_mode(reader.fixed(1)[0])
        flat = reader.blobs()
        if len(flat) % 2:
            raise EnvelopeDecodeError("affected contract transactions must come in pairs")
        exec_hash = reader.blob()
        mandatory = reader.blobs()
        group = reader.blobs()
        reader.end()
        return cls(
            sender_key=sender_key,
            cipher_text=cipher_text,
            cipher_text_nonce=cipher_text_nonce,
            recipient_boxes=boxes,
            recipient_nonce=recipient_nonce,
            recipient_keys=keys,
            privacy_mode=mode,
            affected_contract_transactions=tuple(zip(flat[::2], flat[1::2], strict=True)),
            exec_hash=exec_hash,
            mandatory_recipients=mandatory,
            group_keys=group,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "senderKey": b64encode(self.sender_key),
            "cipherText": b64encode(self.cipher_text),
            "cipherTextNonce": b64encode(self.cipher_text_nonce),
            "recipientBoxes": [b64encode(b) for b in self.recipient_boxes],
            "recipientNonce": b64encode(self.recipient_nonce),
            "recipientKeys": [b64encode(k) for k in self.recipient_keys],
            "privacyMode": int(self.privacy_mode),
            "affectedContractTransactions": {
                b64encode(h): b64encode(s) for h, s in self.affected_contract_transactions
            },
            "execHash": b64encode(self.exec_hash),
            "mandatoryRecipients": [b64encode(k) for k in self.mandatory_recipients],
            "groupKeys": [b64encode(k) for k in self.group_keys],
        }

    @classmethod
    def from_json(cls, obj: object) -> EncodedPayload:
        if not isinstance(obj, dict):
            raise BadRequest("envelope must be a JSON object")
        try:
            acoth = obj.get("affectedContractTransactions", {})
            if not isinstance(acoth, dict):
                raise BadRequest("affectedContractTransactions must be an object")
            return cls(
                version=int(obj.get("version", ENVELOPE_VERSION)),
                sender_key=b64decode(obj["senderKey"], "senderKey"),
                cipher_text=b64decode(obj["cipherText"], "cipherText"),
                cipher_text_nonce=b64decode(obj["cipherTextNonce"], "cipherTextNonce"),
                recipient_boxes=_b64_list(obj.get("recipientBoxes"), "recipientBoxes"),
                recipient_nonce=b64decode(obj["recipientNonce"], "recipientNonce"),
                recipient_keys=_b64_list(obj.get("recipientKeys"), "recipientKeys"),
                privacy_mode=parse_privacy_mode(obj.get("privacyMode", 0)),
                affected_contract_transactions=tuple(
                    (b64decode(h, "affected hash"), b64decode(s, "security hash"))
                    for h, s in acoth.items()
                ),
                exec_hash=b64decode(obj.get("execHash", ""), "execHash"),
                mandatory_recipients=_b64_list(
                    obj.get("mandatoryRecipients", []), "mandatoryRecipients"
                ),
                group_keys=_b64_list(obj.get("groupKeys", []), "groupKeys"),
            )
        except KeyError as exc:
            raise BadRequest(f"envelope field {exc.args[0]} is missing") from exc


def _b64_list(value: object, what: str) -> tuple[bytes, ...]:
    if not isinstance(value, list):
        raise BadRequest(f"{what} must be a list of base64 strings")
    return tuple(b64decode(item, what) for item in value)


def parse_privacy_mode(value: object) -> PrivacyMode:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest("privacyFlag must be an integer 0..3")
    try:
        return PrivacyMode(value)
    except ValueError as exc:
        raise BadRequest(f"privacyFlag {value} is not one of 0, 1, 2, 3") from exc


@dataclass(frozen=True)
class RawTransaction:
    """A payload encrypted by ``/storeraw``: kept apart, sealed only to its sender.

    ``/sendsignedtx`` later opens ``sender_box`` and re-wraps the same master key
    for the recipients, so the hash (of the ciphertext) never changes.
    """

    sender_key: bytes
    cipher_text: bytes
    cipher_text_nonce: bytes
    sender_box: bytes
    recipient_nonce: bytes
    version: int = RAW_VERSION

    def __post_init__(self) -> None:
        if self.version != RAW_VERSION:
            raise EnvelopeDecodeError(f"raw transaction version {self.version} is not supported")
        _check_key(self.sender_key, "sender key")
        if len(self.sender_box) != BOX_SIZE:
            raise EnvelopeDecodeError(f"sender box must be {BOX_SIZE} bytes")
        if len(self.cipher_text_nonce) != NONCE_SIZE or len(self.recipient_nonce) != NONCE_SIZE:
            raise EnvelopeDecodeError(f"nonces must be {NONCE_SIZE} bytes")

    @property
    def hash(self) -> bytes:
        return transaction_hash(self.cipher_text)

    def to_bytes(self) -> bytes:
        writer = FrameWriter(RAW_MAGIC, self.version)
        writer.fixed(self.sender_key)
        writer.blob(self.cipher_text)
        writer.fixed(self.cipher_text_nonce)
        writer.fixed(self.sender_box)
        writer.fixed(self.recipient_nonce)
        return writer.finish()

    @classmethod
    def from_bytes(cls, data: bytes) -> RawTransaction:
        reader = FrameReader(data, RAW_MAGIC, "raw transaction")
        if reader.version != RAW_VERSION:
            raise EnvelopeDecodeError(f"raw transaction version {reader.version} is not supported")
        raw = cls(
            sender_key=reader.fixed(KEY_SIZE),
            cipher_text=reader.blob(),
            cipher_text_nonce=reader.fixed(NONCE_SIZE),
            sender_box=reader.fixed(BOX_SIZE),
            recipient_nonce=reader.fixed(NONCE_SIZE),
        )
        reader.end()
        return raw

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "senderKey": b64encode(self.sender_key),
            "cipherText": b64encode(self.cipher_text),
            "cipherTextNonce": b64encode(self.cipher_text_nonce),
            "senderBox": b64encode(self.sender_box),
            "recipientNonce": b64encode(self.recipient_nonce),
        }

    @classmethod
    def from_json(cls, obj: object) -> RawTransaction:
        if not isinstance(obj, dict):
            raise BadRequest("raw transaction must be a JSON object")
        try:
            return cls(
                version=int(obj.get("version", RAW_VERSION)),
                sender_key=b64decode(obj["senderKey"], "senderKey"),
                cipher_text=b64decode(obj["cipherText"], "cipherText"),
                cipher_text_nonce=b64decode(obj["cipherTextNonce"], "cipherTextNonce"),
                sender_box=b64decode(obj["senderBox"], "senderBox"),
                recipient_nonce=b64decode(obj["recipientNonce"], "recipientNonce"),
            )
        except KeyError as exc:
            raise BadRequest(f"raw transaction field {exc.args[0]} is missing") from exc
