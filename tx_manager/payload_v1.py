"""Version 1 of the envelope and raw transaction: frozen, kept so stored data stays readable.

Version 1 hashes only the ciphertext (SHA3-512) and authenticates none of the
metadata: the group keys, privacy flag, mandatory recipients, exec hash and
affected contracts travel beside the ciphertext unprotected. New sends never
produce it (see ``payload`` for version 2). It is still read from disk, served
by ``/transaction/{hash}``, pushed back by resend, and accepted from old peers
under one rule: a push may create a new version-1 transaction or add boxes to a
stored one whose metadata and group are identical, never widen a group.

Binary format v1 (see ``codec``): magic ``QTME``, version byte 1, then sender
key (32), ciphertext, ciphertext nonce, boxes, recipient nonce, recipient
keys, privacy mode (1 byte), affected contract transactions (flat list of
hash, security-hash pairs), exec hash, mandatory recipients, group keys,
then a CRC32. The encoder and decoder below must never change: the frozen
vectors in ``tests/tx_manager/test_format_compat.py`` check them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

from tx_manager.codec import FrameReader, FrameWriter
from tx_manager.errors import BadRequest, EnvelopeConflict, EnvelopeDecodeError
from tx_manager.fields import (
    BOX_SIZE,
    ENVELOPE_MAGIC,
    HASH_SIZE,
    KEY_SIZE,
    NONCE_SIZE,
    RAW_MAGIC,
    TAG_SIZE,
    PrivacyMode,
    b64_list,
    b64decode,
    b64encode,
    boxes_added,
    check_boxes,
    check_key,
    check_nonce,
    parse_privacy_mode,
)

ENVELOPE_VERSION_1 = 1
RAW_VERSION_1 = 1


def transaction_hash_v1(cipher_text: bytes) -> bytes:
    """The 64-byte key of a version-1 envelope: SHA3-512 of its ciphertext alone."""
    return hashlib.sha3_512(cipher_text).digest()


@dataclass(frozen=True)
class EncodedPayloadV1:
    """One private payload, encrypted, in the version-1 layout; checked on construction."""

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
    version: int = field(default=ENVELOPE_VERSION_1)

    def __post_init__(self) -> None:
        if self.version != ENVELOPE_VERSION_1:
            raise EnvelopeDecodeError(f"envelope version {self.version} is not version 1")
        check_key(self.sender_key, "sender key")
        if len(self.cipher_text) < TAG_SIZE:
            raise EnvelopeDecodeError("ciphertext is shorter than its tag")
        check_nonce(self.cipher_text_nonce, "ciphertext")
        check_nonce(self.recipient_nonce, "recipient")
        check_boxes(self.recipient_keys, self.recipient_boxes)
        for key in (*self.mandatory_recipients, *self.group_keys):
            check_key(key, "recipient key")
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
        return transaction_hash_v1(self.cipher_text)

    @property
    def body_id(self) -> bytes | None:
        """Version 1 has no key commitment, so no identity apart from its hash."""
        return None

    @property
    def parties(self) -> tuple[bytes, ...]:
        """Every key of the group: the full list when known, else sender and box holders."""
        if self.group_keys:
            return self.group_keys
        return tuple(sorted({self.sender_key, *self.recipient_keys}))

    def for_recipients(self, keys: set[bytes]) -> EncodedPayloadV1:
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

    def conflict_with(self, other: object) -> str | None:
        """Why ``other`` may not be merged into this stored copy, or None if it may.

        Everything but the boxes must be identical, and every box ``other`` adds
        must belong to a key of the (non-empty) group: a version-1 push can add a
        party's box, never change or widen the group.
        """
        if not isinstance(other, EncodedPayloadV1):
            return "the stored copy is version 1, the pushed one is not"
        differing = [
            name
            for name, mine, theirs in (
                ("senderKey", self.sender_key, other.sender_key),
                ("cipherText", self.cipher_text, other.cipher_text),
                ("cipherTextNonce", self.cipher_text_nonce, other.cipher_text_nonce),
                ("recipientNonce", self.recipient_nonce, other.recipient_nonce),
                ("privacyFlag", self.privacy_mode, other.privacy_mode),
                (
                    "affectedContractTransactions",
                    self.affected_contract_transactions,
                    other.affected_contract_transactions,
                ),
                ("execHash", self.exec_hash, other.exec_hash),
                ("mandatoryRecipients", self.mandatory_recipients, other.mandatory_recipients),
                ("groupKeys", self.group_keys, other.group_keys),
            )
            if mine != theirs
        ]
        if differing:
            return f"version-1 fields differ: {', '.join(differing)}"
        outside = [
            key
            for key in other.recipient_keys
            if key not in self.recipient_keys and key not in self.group_keys
        ]
        if outside:
            return f"box for key {b64encode(outside[0])} outside the group"
        return None

    def merged_with(self, other: object) -> EncodedPayloadV1:
        """This envelope plus the boxes of ``other`` it lacks; EnvelopeConflict if not allowed."""
        reason = self.conflict_with(other)
        if reason is not None or not isinstance(other, EncodedPayloadV1):
            raise EnvelopeConflict(b64encode(self.hash), reason or "not a version-1 envelope")
        added = boxes_added(
            self.recipient_keys, self.recipient_boxes, other.recipient_keys, other.recipient_boxes
        )
        if added is None:
            return self
        return replace(self, recipient_keys=added[0], recipient_boxes=added[1])

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
    def from_bytes(cls, data: bytes) -> EncodedPayloadV1:
        reader = FrameReader(data, ENVELOPE_MAGIC, "envelope")
        if reader.version != ENVELOPE_VERSION_1:
            raise EnvelopeDecodeError(f"envelope version {reader.version} is not version 1")
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
    def from_json(cls, obj: object) -> EncodedPayloadV1:
        if not isinstance(obj, dict):
            raise BadRequest("envelope must be a JSON object")
        try:
            acoth = obj.get("affectedContractTransactions", {})
            if not isinstance(acoth, dict):
                raise BadRequest("affectedContractTransactions must be an object")
            return cls(
                version=int(obj.get("version", ENVELOPE_VERSION_1)),
                sender_key=b64decode(obj["senderKey"], "senderKey"),
                cipher_text=b64decode(obj["cipherText"], "cipherText"),
                cipher_text_nonce=b64decode(obj["cipherTextNonce"], "cipherTextNonce"),
                recipient_boxes=b64_list(obj.get("recipientBoxes"), "recipientBoxes"),
                recipient_nonce=b64decode(obj["recipientNonce"], "recipientNonce"),
                recipient_keys=b64_list(obj.get("recipientKeys"), "recipientKeys"),
                privacy_mode=parse_privacy_mode(obj.get("privacyMode", 0)),
                affected_contract_transactions=tuple(
                    (b64decode(h, "affected hash"), b64decode(s, "security hash"))
                    for h, s in acoth.items()
                ),
                exec_hash=b64decode(obj.get("execHash", ""), "execHash"),
                mandatory_recipients=b64_list(
                    obj.get("mandatoryRecipients", []), "mandatoryRecipients"
                ),
                group_keys=b64_list(obj.get("groupKeys", []), "groupKeys"),
            )
        except KeyError as exc:
            raise BadRequest(f"envelope field {exc.args[0]} is missing") from exc


@dataclass(frozen=True)
class RawTransactionV1:
    """A payload encrypted by a version-1 ``/storeraw``: sealed to its sender alone.

    Its hash is SHA3-512 of the ciphertext, already signed into a transaction,
    so ``/sendsignedtx`` distributes it as a version-1 envelope.
    """

    sender_key: bytes
    cipher_text: bytes
    cipher_text_nonce: bytes
    sender_box: bytes
    recipient_nonce: bytes
    version: int = RAW_VERSION_1

    def __post_init__(self) -> None:
        if self.version != RAW_VERSION_1:
            raise EnvelopeDecodeError(f"raw transaction version {self.version} is not version 1")
        check_key(self.sender_key, "sender key")
        if len(self.sender_box) != BOX_SIZE:
            raise EnvelopeDecodeError(f"sender box must be {BOX_SIZE} bytes")
        check_nonce(self.cipher_text_nonce, "ciphertext")
        check_nonce(self.recipient_nonce, "recipient")

    @property
    def hash(self) -> bytes:
        return transaction_hash_v1(self.cipher_text)

    def to_bytes(self) -> bytes:
        writer = FrameWriter(RAW_MAGIC, self.version)
        writer.fixed(self.sender_key)
        writer.blob(self.cipher_text)
        writer.fixed(self.cipher_text_nonce)
        writer.fixed(self.sender_box)
        writer.fixed(self.recipient_nonce)
        return writer.finish()

    @classmethod
    def from_bytes(cls, data: bytes) -> RawTransactionV1:
        reader = FrameReader(data, RAW_MAGIC, "raw transaction")
        if reader.version != RAW_VERSION_1:
            raise EnvelopeDecodeError(f"raw transaction version {reader.version} is not version 1")
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
    def from_json(cls, obj: object) -> RawTransactionV1:
        if not isinstance(obj, dict):
            raise BadRequest("raw transaction must be a JSON object")
        try:
            return cls(
                version=int(obj.get("version", RAW_VERSION_1)),
                sender_key=b64decode(obj["senderKey"], "senderKey"),
                cipher_text=b64decode(obj["cipherText"], "cipherText"),
                cipher_text_nonce=b64decode(obj["cipherTextNonce"], "cipherTextNonce"),
                sender_box=b64decode(obj["senderBox"], "senderBox"),
                recipient_nonce=b64decode(obj["recipientNonce"], "recipientNonce"),
            )
        except KeyError as exc:
            raise BadRequest(f"raw transaction field {exc.args[0]} is missing") from exc
