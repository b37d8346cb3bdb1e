"""The envelope (Tessera's EncodedPayload), version 2, and the raw transaction, as wire types.

An envelope is what a manager stores and pushes: the AEAD ciphertext of one
payload, its authenticated header, and the master key sealed once per
recipient ("box"). Before a push the sender cuts it down to the receiver's own
box; the header, with every key of the party group, stays intact.

Version 2 (ARCHITECTURE.md, "Envelope version 2"). The header holds everything
that decides how or where the payload executes, plus what binds the payload
to its key:

    header = frame "QTMH" v2: binding (1 byte), sender key (32),
             [execution terms: group keys (sorted, unique, sender included),
              privacy flag (1 byte), mandatory recipients (sorted, unique),
              exec hash, affected contract transactions (sorted hash, security-hash pairs)],
             ciphertext nonce (24), key commitment (32)
    key commitment = SHA3-256("quorum-py/tx-manager/key-commitment/v2" || master key)
    ciphertext     = XChaCha20-Poly1305(master key, nonce, payload, associated data = header)
    hash (64)      = SHA3-512("quorum-py/tx-manager/envelope/v2" || u32(len header) || header
                              || ciphertext)

The binding says where the execution terms are:

- ``hashed``: inside the header, so under the hash and the AEAD. Every send
  and every ``/storeraw`` that names its recipients uses it.
- ``keyed``: a Tessera-style ``/storeraw`` fixes the hash before anyone names
  the recipients, so the terms cannot lie under the hash. They travel beside
  the header with ``terms_mac`` = HMAC-SHA256 under a key derived (HKDF) from
  the master key, over the hash and the encoded terms. An outsider cannot
  change them (it lacks the master key); a party holding the master key could.

Boxes are not under the hash: a copy pushed to one recipient carries only its
own box. The envelope frame is "QTME" v2: header, ciphertext, keyed terms
(empty unless keyed), terms MAC, recipient nonce, recipient keys, boxes, CRC32.
Version 1 (``payload_v1``) stays readable through ``decode_envelope``.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Any

from tx_manager.codec import FrameReader, FrameWriter
from tx_manager.errors import BadRequest, EnvelopeConflict, EnvelopeDecodeError
from tx_manager.fields import (
    BOX_SIZE,
    ENVELOPE_MAGIC,
    HASH_SIZE,
    KEY_SIZE,
    MASTER_KEY_SIZE,
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
    privacy_group_id,
)
from tx_manager.payload_v1 import EncodedPayloadV1, RawTransactionV1

__all__ = [
    "BOX_SIZE",
    "HASH_SIZE",
    "KEY_SIZE",
    "NONCE_SIZE",
    "TAG_SIZE",
    "Envelope",
    "EncodedPayload",
    "EncodedPayloadV1",
    "EnvelopeHeader",
    "ExecutionTerms",
    "HeaderBinding",
    "PrivacyMode",
    "Raw",
    "RawTransaction",
    "RawTransactionV1",
    "b64decode",
    "b64encode",
    "decode_envelope",
    "decode_raw",
    "key_commitment",
    "parse_privacy_mode",
    "privacy_group_id",
    "transaction_hash",
]

ENVELOPE_VERSION = 2
RAW_VERSION = 2
HEADER_MAGIC = b"QTMH"
TERMS_MAGIC = b"QTMT"
KEY_COMMITMENT_SIZE = 32
TERMS_MAC_SIZE = 32

HASH_DOMAIN = b"quorum-py/tx-manager/envelope/v2"
KEY_COMMITMENT_DOMAIN = b"quorum-py/tx-manager/key-commitment/v2"
BODY_ID_DOMAIN = b"quorum-py/tx-manager/body-id/v2"

_U32 = struct.Struct(">I")


def _memo(instance: object, name: str, compute: Callable[[], bytes]) -> bytes:
    """A value computed once per (frozen) instance.

    Not ``functools.cached_property``: before Python 3.12 it takes one lock shared
    by every instance, which the event loop and the store's writer thread then
    contend for on every envelope.
    """
    slots = instance.__dict__
    value = slots.get(name)
    if value is None:
        value = slots[name] = compute()
    return bytes(value)


def key_commitment(master_key: bytes) -> bytes:
    """What the header commits to: a domain-separated SHA3-256 of the master key.

    XChaCha20-Poly1305 does not commit to its key (two keys can open one
    ciphertext to two plaintexts); checking this before decrypting does.
    """
    if len(master_key) != MASTER_KEY_SIZE:
        raise EnvelopeDecodeError(f"master key must be {MASTER_KEY_SIZE} bytes")
    return hashlib.sha3_256(KEY_COMMITMENT_DOMAIN + master_key).digest()


def transaction_hash(header: bytes, cipher_text: bytes) -> bytes:
    """The 64-byte key of a version-2 envelope (and of its raw transaction)."""
    return hashlib.sha3_512(HASH_DOMAIN + _U32.pack(len(header)) + header + cipher_text).digest()


class HeaderBinding(IntEnum):
    """Where an envelope's execution terms are authenticated (see the module doc)."""

    HASHED = 1
    KEYED = 2

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: object) -> HeaderBinding:
        for binding in cls:
            if value == binding.label or value == int(binding):
                return binding
        raise EnvelopeDecodeError(f"header binding {value!r} is not 'hashed' or 'keyed'")


def _sorted_unique(keys: tuple[bytes, ...], what: str) -> None:
    for key in keys:
        check_key(key, what)
    if list(keys) != sorted(set(keys)):
        raise EnvelopeDecodeError(f"{what}s must be sorted and unique")


@dataclass(frozen=True)
class ExecutionTerms:
    """Everything that decides how or where a payload executes; canonical by construction."""

    group_keys: tuple[bytes, ...]
    privacy_mode: PrivacyMode = PrivacyMode.STANDARD
    mandatory_recipients: tuple[bytes, ...] = ()
    exec_hash: bytes = b""
    affected_contract_transactions: tuple[tuple[bytes, bytes], ...] = ()

    def __post_init__(self) -> None:
        if not self.group_keys:
            raise EnvelopeDecodeError("the party group has no keys")
        _sorted_unique(self.group_keys, "group key")
        if not isinstance(self.privacy_mode, PrivacyMode):
            object.__setattr__(self, "privacy_mode", parse_privacy_mode(self.privacy_mode))
        _sorted_unique(self.mandatory_recipients, "mandatory recipient")
        outside = set(self.mandatory_recipients) - set(self.group_keys)
        if outside:
            raise EnvelopeDecodeError("mandatory recipients must be members of the group")
        hashes = [pair[0] for pair in self.affected_contract_transactions]
        if any(
            len(pair) != 2 or len(pair[0]) != HASH_SIZE
            for pair in self.affected_contract_transactions
        ):
            raise EnvelopeDecodeError("affected contract transaction hash must be 64 bytes")
        if hashes != sorted(set(hashes)):
            raise EnvelopeDecodeError("affected contract transactions must be sorted and unique")

    @classmethod
    def build(
        cls,
        sender: bytes,
        recipients: tuple[bytes, ...] | list[bytes],
        privacy_mode: PrivacyMode = PrivacyMode.STANDARD,
        mandatory_recipients: tuple[bytes, ...] = (),
        exec_hash: bytes = b"",
        affected_contract_transactions: tuple[tuple[bytes, bytes], ...] = (),
    ) -> ExecutionTerms:
        """The canonical terms of a send from ``sender`` to ``recipients`` (any order)."""
        return cls(
            group_keys=tuple(sorted({sender, *recipients})),
            privacy_mode=privacy_mode,
            mandatory_recipients=tuple(sorted(set(mandatory_recipients))),
            exec_hash=exec_hash,
            affected_contract_transactions=tuple(
                sorted(dict(affected_contract_transactions).items())
            ),
        )

    def write_to(self, writer: FrameWriter) -> None:
        writer.blobs(self.group_keys)
        writer.fixed(bytes([int(self.privacy_mode)]))
        writer.blobs(self.mandatory_recipients)
        writer.blob(self.exec_hash)
        writer.blobs([part for pair in self.affected_contract_transactions for part in pair])

    @classmethod
    def read_from(cls, reader: FrameReader) -> ExecutionTerms:
        group = reader.blobs()
        mode = parse_privacy_mode(reader.fixed(1)[0])
        mandatory = reader.blobs()
        exec_hash = reader.blob()
        flat = reader.blobs()
        if len(flat) % 2:
            raise EnvelopeDecodeError("affected contract transactions must come in pairs")
        return cls(
            group_keys=group,
            privacy_mode=mode,
            mandatory_recipients=mandatory,
            exec_hash=exec_hash,
            affected_contract_transactions=tuple(zip(flat[::2], flat[1::2], strict=True)),
        )

    def to_bytes(self) -> bytes:
        """The terms alone (keyed binding): frame "QTMT" v2."""
        writer = FrameWriter(TERMS_MAGIC, ENVELOPE_VERSION)
        self.write_to(writer)
        return writer.finish()

    @classmethod
    def from_bytes(cls, data: bytes) -> ExecutionTerms:
        reader = FrameReader(data, TERMS_MAGIC, "execution terms")
        if reader.version != ENVELOPE_VERSION:
            raise EnvelopeDecodeError(f"execution terms version {reader.version} is not supported")
        terms = cls.read_from(reader)
        reader.end()
        return terms

    def to_json(self) -> dict[str, Any]:
        return {
            "groupKeys": [b64encode(k) for k in self.group_keys],
            "privacyFlag": int(self.privacy_mode),
            "mandatoryRecipients": [b64encode(k) for k in self.mandatory_recipients],
            "execHash": b64encode(self.exec_hash),
            "affectedContractTransactions": [
                {"hash": b64encode(h), "securityHash": b64encode(s)}
                for h, s in self.affected_contract_transactions
            ],
        }

    @classmethod
    def from_json(cls, obj: object) -> ExecutionTerms:
        body = _json_object(obj, "execution terms")
        pairs = body.get("affectedContractTransactions", [])
        if not isinstance(pairs, list):
            raise BadRequest("affectedContractTransactions must be a list")
        return cls(
            group_keys=b64_list(body.get("groupKeys"), "groupKeys"),
            privacy_mode=parse_privacy_mode(body.get("privacyFlag", 0)),
            mandatory_recipients=b64_list(
                body.get("mandatoryRecipients", []), "mandatoryRecipients"
            ),
            exec_hash=b64decode(body.get("execHash", ""), "execHash"),
            affected_contract_transactions=tuple(
                (
                    b64decode(_json_object(p, "affected contract").get("hash"), "hash"),
                    b64decode(p.get("securityHash", ""), "securityHash"),
                )
                for p in pairs
            ),
        )

    def differences(self, other: ExecutionTerms, mine: str, theirs: str) -> list[str]:
        """What differs between two sets of terms, one short phrase per field."""
        found: list[str] = []

        def key_sets(name: str, a: tuple[bytes, ...], b: tuple[bytes, ...]) -> None:
            only_mine = sorted(set(a) - set(b))
            only_theirs = sorted(set(b) - set(a))
            if only_mine or only_theirs:
                parts = [f"only {mine}: {b64encode(k)}" for k in only_mine]
                parts += [f"only {theirs}: {b64encode(k)}" for k in only_theirs]
                found.append(f"{name} ({'; '.join(parts)})")

        key_sets("parties", self.group_keys, other.group_keys)
        if self.privacy_mode != other.privacy_mode:
            found.append(
                f"privacyFlag ({mine} {int(self.privacy_mode)}, {theirs} {int(other.privacy_mode)})"
            )
        key_sets("mandatoryRecipients", self.mandatory_recipients, other.mandatory_recipients)
        if self.exec_hash != other.exec_hash:
            found.append("execHash")
        if self.affected_contract_transactions != other.affected_contract_transactions:
            found.append("affectedContractTransactions")
        return found


@dataclass(frozen=True)
class EnvelopeHeader:
    """The authenticated header: AEAD associated data and (with the ciphertext) the hash."""

    binding: HeaderBinding
    sender_key: bytes
    cipher_text_nonce: bytes
    key_commitment: bytes
    terms: ExecutionTerms | None = None
    version: int = ENVELOPE_VERSION

    def __post_init__(self) -> None:
        if self.version != ENVELOPE_VERSION:
            raise EnvelopeDecodeError(f"header version {self.version} is not supported")
        if not isinstance(self.binding, HeaderBinding):
            object.__setattr__(self, "binding", HeaderBinding.parse(self.binding))
        check_key(self.sender_key, "sender key")
        check_nonce(self.cipher_text_nonce, "ciphertext")
        if len(self.key_commitment) != KEY_COMMITMENT_SIZE:
            raise EnvelopeDecodeError(f"key commitment must be {KEY_COMMITMENT_SIZE} bytes")
        if (self.terms is not None) != (self.binding is HeaderBinding.HASHED):
            raise EnvelopeDecodeError("a hashed header carries the terms, a keyed one does not")
        if self.terms is not None and self.sender_key not in self.terms.group_keys:
            raise EnvelopeDecodeError("the sender key is not in the group")

    def to_bytes(self) -> bytes:
        return self.encoded

    @property
    def encoded(self) -> bytes:
        """The encoding, computed once: every copy of an envelope shares its header."""
        return _memo(self, "_encoded", self._encode)

    def _encode(self) -> bytes:
        writer = FrameWriter(HEADER_MAGIC, self.version)
        writer.fixed(bytes([int(self.binding)]))
        writer.fixed(self.sender_key)
        if self.terms is not None:
            self.terms.write_to(writer)
        writer.fixed(self.cipher_text_nonce)
        writer.fixed(self.key_commitment)
        return writer.finish()

    @classmethod
    def from_bytes(cls, data: bytes) -> EnvelopeHeader:
        reader = FrameReader(data, HEADER_MAGIC, "envelope header")
        if reader.version != ENVELOPE_VERSION:
            raise EnvelopeDecodeError(f"header version {reader.version} is not supported")
        binding = HeaderBinding.parse(reader.fixed(1)[0])
        sender = reader.fixed(KEY_SIZE)
        terms = ExecutionTerms.read_from(reader) if binding is HeaderBinding.HASHED else None
        header = cls(
            binding=binding,
            sender_key=sender,
            terms=terms,
            cipher_text_nonce=reader.fixed(NONCE_SIZE),
            key_commitment=reader.fixed(KEY_COMMITMENT_SIZE),
        )
        reader.end()
        return header

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "version": self.version,
            "headerBinding": self.binding.label,
            "senderKey": b64encode(self.sender_key),
        }
        if self.terms is not None:
            body["terms"] = self.terms.to_json()
        body["cipherTextNonce"] = b64encode(self.cipher_text_nonce)
        body["keyCommitment"] = b64encode(self.key_commitment)
        return body

    @classmethod
    def from_json(cls, obj: object) -> EnvelopeHeader:
        body = _json_object(obj, "envelope header")
        terms = body.get("terms")
        return cls(
            version=_json_int(body.get("version", ENVELOPE_VERSION), "version"),
            binding=HeaderBinding.parse(body.get("headerBinding")),
            sender_key=b64decode(body.get("senderKey"), "senderKey"),
            terms=None if terms is None else ExecutionTerms.from_json(terms),
            cipher_text_nonce=b64decode(body.get("cipherTextNonce"), "cipherTextNonce"),
            key_commitment=b64decode(body.get("keyCommitment"), "keyCommitment"),
        )

    def differences(self, other: EnvelopeHeader, mine: str, theirs: str) -> list[str]:
        found = [
            name
            for name, a, b in (
                ("headerBinding", self.binding, other.binding),
                ("senderKey", self.sender_key, other.sender_key),
                ("cipherTextNonce", self.cipher_text_nonce, other.cipher_text_nonce),
                ("keyCommitment", self.key_commitment, other.key_commitment),
            )
            if a != b
        ]
        if self.terms is not None and other.terms is not None:
            found += self.terms.differences(other.terms, mine, theirs)
        return found


@dataclass(frozen=True)
class EncodedPayload:
    """One private payload, encrypted, in the version-2 layout; checked on construction."""

    header: EnvelopeHeader
    cipher_text: bytes
    recipient_nonce: bytes
    recipient_keys: tuple[bytes, ...]
    recipient_boxes: tuple[bytes, ...]
    keyed_terms: ExecutionTerms | None = None
    terms_mac: bytes = b""
    version: int = field(default=ENVELOPE_VERSION)

    def __post_init__(self) -> None:
        if self.version != ENVELOPE_VERSION:
            raise EnvelopeDecodeError(f"envelope version {self.version} is not supported")
        if len(self.cipher_text) < TAG_SIZE:
            raise EnvelopeDecodeError("ciphertext is shorter than its tag")
        check_nonce(self.recipient_nonce, "recipient")
        check_boxes(self.recipient_keys, self.recipient_boxes)
        keyed = self.header.binding is HeaderBinding.KEYED
        if keyed != (self.keyed_terms is not None):
            raise EnvelopeDecodeError("a keyed envelope carries its terms, a hashed one does not")
        if len(self.terms_mac) != (TERMS_MAC_SIZE if keyed else 0):
            raise EnvelopeDecodeError("a keyed envelope carries a 32-byte terms MAC, a hashed none")
        if (
            self.keyed_terms is not None
            and self.header.sender_key not in self.keyed_terms.group_keys
        ):
            raise EnvelopeDecodeError("the sender key is not in the group")

    # -- what the header says --------------------------------------------------------
    @property
    def terms(self) -> ExecutionTerms:
        terms = self.header.terms if self.header.terms is not None else self.keyed_terms
        if terms is None:  # excluded by __post_init__
            raise EnvelopeDecodeError("envelope has no execution terms")
        return terms

    @property
    def header_binding(self) -> HeaderBinding:
        return self.header.binding

    @property
    def sender_key(self) -> bytes:
        return self.header.sender_key

    @property
    def cipher_text_nonce(self) -> bytes:
        return self.header.cipher_text_nonce

    @property
    def key_commitment(self) -> bytes:
        return self.header.key_commitment

    @property
    def group_keys(self) -> tuple[bytes, ...]:
        return self.terms.group_keys

    @property
    def parties(self) -> tuple[bytes, ...]:
        """Every key of the authenticated group, sorted."""
        return self.terms.group_keys

    @property
    def privacy_mode(self) -> PrivacyMode:
        return self.terms.privacy_mode

    @property
    def mandatory_recipients(self) -> tuple[bytes, ...]:
        return self.terms.mandatory_recipients

    @property
    def exec_hash(self) -> bytes:
        return self.terms.exec_hash

    @property
    def affected_contract_transactions(self) -> tuple[tuple[bytes, bytes], ...]:
        return self.terms.affected_contract_transactions

    @property
    def header_bytes(self) -> bytes:
        """The encoded header: the AEAD's associated data, hashed with the ciphertext."""
        return self.header.encoded

    @property
    def hash(self) -> bytes:
        return _memo(self, "_hash", lambda: transaction_hash(self.header_bytes, self.cipher_text))

    @property
    def body_id(self) -> bytes | None:
        """Identity of the sealed payload apart from its terms: sender, nonce, key commitment.

        Two envelopes with one body id but different hashes are the same payload
        presented under two headers: a push of the second is a conflict (409).
        """
        return _memo(
            self,
            "_body_id",
            lambda: hashlib.sha3_256(
                BODY_ID_DOMAIN + self.sender_key + self.cipher_text_nonce + self.key_commitment
            ).digest(),
        )

    # -- copies and merges -----------------------------------------------------------
    def for_recipients(self, keys: set[bytes]) -> EncodedPayload:
        """The copy pushed to one manager: only the boxes of ``keys``, the header intact."""
        pairs = [
            (k, b)
            for k, b in zip(self.recipient_keys, self.recipient_boxes, strict=True)
            if k in keys
        ]
        copy = replace(
            self,
            recipient_keys=tuple(k for k, _ in pairs),
            recipient_boxes=tuple(b for _, b in pairs),
        )
        copy.__dict__["_hash"] = self.hash  # boxes are not under the hash: the same hash
        return copy

    def conflict_with(self, other: object) -> str | None:
        """Why ``other`` may not be merged into this stored copy, or None if it may.

        Everything but the boxes must be byte-for-byte the same (header,
        ciphertext, keyed terms and their MAC, recipient nonce), and every box
        ``other`` adds must belong to a key of the authenticated group.
        """
        if not isinstance(other, EncodedPayload):
            return "the stored copy is version 2, the pushed one is version 1"
        if other.header_bytes != self.header_bytes:
            changed = self.header.differences(other.header, "stored", "pushed")
            return f"authenticated header differs ({', '.join(changed) or 'encoding'})"
        if other.cipher_text != self.cipher_text:
            return "ciphertext differs"
        if self.keyed_terms is not None and other.keyed_terms is not None:
            changed = self.keyed_terms.differences(other.keyed_terms, "stored", "pushed")
            if changed:
                return f"terms bound by the header MAC differ ({', '.join(changed)})"
        if other.terms_mac != self.terms_mac:
            return "header MAC differs"
        if other.recipient_nonce != self.recipient_nonce:
            return "recipient nonce differs"
        group = set(self.group_keys)
        outside = [key for key in other.recipient_keys if key not in group]
        if outside:
            return f"box for key {b64encode(outside[0])} outside the authenticated group"
        return None

    def merged_with(self, other: object) -> EncodedPayload:
        """This envelope plus the boxes of ``other`` it lacks; EnvelopeConflict if not allowed."""
        reason = self.conflict_with(other)
        if reason is not None or not isinstance(other, EncodedPayload):
            raise EnvelopeConflict(b64encode(self.hash), reason or "not a version-2 envelope")
        added = boxes_added(
            self.recipient_keys, self.recipient_boxes, other.recipient_keys, other.recipient_boxes
        )
        if added is None:
            return self
        return replace(self, recipient_keys=added[0], recipient_boxes=added[1])

    # -- encodings -------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        writer = FrameWriter(ENVELOPE_MAGIC, self.version)
        writer.blob(self.header_bytes)
        writer.blob(self.cipher_text)
        writer.blob(b"" if self.keyed_terms is None else self.keyed_terms.to_bytes())
        writer.blob(self.terms_mac)
        writer.fixed(self.recipient_nonce)
        writer.blobs(self.recipient_keys)
        writer.blobs(self.recipient_boxes)
        return writer.finish()

    @classmethod
    def from_bytes(cls, data: bytes) -> EncodedPayload:
        reader = FrameReader(data, ENVELOPE_MAGIC, "envelope")
        if reader.version != ENVELOPE_VERSION:
            raise EnvelopeDecodeError(f"envelope version {reader.version} is not supported")
        header = _received_header(reader.blob())
        cipher_text = reader.blob()
        keyed_terms = reader.blob()
        terms_mac = reader.blob()
        recipient_nonce = reader.fixed(NONCE_SIZE)
        keys = reader.blobs()
        boxes = reader.blobs()
        reader.end()
        return cls(
            header=header,
            cipher_text=cipher_text,
            keyed_terms=ExecutionTerms.from_bytes(keyed_terms) if keyed_terms else None,
            terms_mac=terms_mac,
            recipient_nonce=recipient_nonce,
            recipient_keys=keys,
            recipient_boxes=boxes,
        )

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "version": self.version,
            "header": self.header.to_json(),
            "cipherText": b64encode(self.cipher_text),
        }
        if self.keyed_terms is not None:
            body["keyedTerms"] = self.keyed_terms.to_json()
            body["termsMac"] = b64encode(self.terms_mac)
        body["recipientNonce"] = b64encode(self.recipient_nonce)
        body["recipientKeys"] = [b64encode(k) for k in self.recipient_keys]
        body["recipientBoxes"] = [b64encode(b) for b in self.recipient_boxes]
        return body

    @classmethod
    def from_json(cls, obj: object) -> EncodedPayload:
        body = _json_object(obj, "envelope")
        keyed = body.get("keyedTerms")
        return cls(
            version=_json_int(body.get("version", ENVELOPE_VERSION), "version"),
            header=EnvelopeHeader.from_json(body.get("header")),
            cipher_text=b64decode(body.get("cipherText"), "cipherText"),
            keyed_terms=None if keyed is None else ExecutionTerms.from_json(keyed),
            terms_mac=b64decode(body.get("termsMac", ""), "termsMac"),
            recipient_nonce=b64decode(body.get("recipientNonce"), "recipientNonce"),
            recipient_keys=b64_list(body.get("recipientKeys"), "recipientKeys"),
            recipient_boxes=b64_list(body.get("recipientBoxes"), "recipientBoxes"),
        )


Envelope = EncodedPayload | EncodedPayloadV1
"""Any envelope a manager may hold: new sends are version 2, old data version 1."""


def _frame_version(data: bytes, magic: bytes) -> int | None:
    if len(data) > len(magic) and data.startswith(magic):
        return data[len(magic)]
    return None


def decode_envelope(data: bytes) -> Envelope:
    """Decode a stored or pushed envelope of any supported version."""
    if _frame_version(data, ENVELOPE_MAGIC) == 1:
        return EncodedPayloadV1.from_bytes(data)
    return EncodedPayload.from_bytes(data)


def _received_header(data: bytes) -> EnvelopeHeader:
    """Decode a header and keep the bytes it came in as its encoding.

    The AEAD's associated data and the hash are then computed over exactly the
    bytes the sender sealed and hashed, so any change to them fails both. (The
    codec is canonical: re-encoding the fields gives the same bytes.)
    """
    header = EnvelopeHeader.from_bytes(data)
    header.__dict__["_encoded"] = data
    return header


@dataclass(frozen=True)
class RawTransaction:
    """A payload encrypted by ``/storeraw``: kept apart, its master key boxed to the sender alone.

    The header, and so the hash, is fixed here. If ``/storeraw`` named the
    recipients the header is ``hashed`` and ``/sendsignedtx`` must name the same
    ones; if not it is ``keyed`` and ``/sendsignedtx`` binds the terms it names
    with the MAC. Either way the master key is re-wrapped and the hash stays.
    """

    header: EnvelopeHeader
    cipher_text: bytes
    sender_box: bytes
    recipient_nonce: bytes
    version: int = RAW_VERSION

    def __post_init__(self) -> None:
        if self.version != RAW_VERSION:
            raise EnvelopeDecodeError(f"raw transaction version {self.version} is not supported")
        if len(self.cipher_text) < TAG_SIZE:
            raise EnvelopeDecodeError("ciphertext is shorter than its tag")
        if len(self.sender_box) != BOX_SIZE:
            raise EnvelopeDecodeError(f"sender box must be {BOX_SIZE} bytes")
        check_nonce(self.recipient_nonce, "recipient")

    @property
    def sender_key(self) -> bytes:
        return self.header.sender_key

    @property
    def cipher_text_nonce(self) -> bytes:
        return self.header.cipher_text_nonce

    @property
    def header_bytes(self) -> bytes:
        return self.header.encoded

    @property
    def hash(self) -> bytes:
        return _memo(self, "_hash", lambda: transaction_hash(self.header_bytes, self.cipher_text))

    def to_bytes(self) -> bytes:
        writer = FrameWriter(RAW_MAGIC, self.version)
        writer.blob(self.header_bytes)
        writer.blob(self.cipher_text)
        writer.fixed(self.sender_box)
        writer.fixed(self.recipient_nonce)
        return writer.finish()

    @classmethod
    def from_bytes(cls, data: bytes) -> RawTransaction:
        reader = FrameReader(data, RAW_MAGIC, "raw transaction")
        if reader.version != RAW_VERSION:
            raise EnvelopeDecodeError(f"raw transaction version {reader.version} is not supported")
        raw = cls(
            header=_received_header(reader.blob()),
            cipher_text=reader.blob(),
            sender_box=reader.fixed(BOX_SIZE),
            recipient_nonce=reader.fixed(NONCE_SIZE),
        )
        reader.end()
        return raw

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "header": self.header.to_json(),
            "cipherText": b64encode(self.cipher_text),
            "senderBox": b64encode(self.sender_box),
            "recipientNonce": b64encode(self.recipient_nonce),
        }

    @classmethod
    def from_json(cls, obj: object) -> RawTransaction:
        body = _json_object(obj, "raw transaction")
        return cls(
            version=_json_int(body.get("version", RAW_VERSION), "version"),
            header=EnvelopeHeader.from_json(body.get("header")),
            cipher_text=b64decode(body.get("cipherText"), "cipherText"),
            sender_box=b64decode(body.get("senderBox"), "senderBox"),
            recipient_nonce=b64decode(body.get("recipientNonce"), "recipientNonce"),
        )


Raw = RawTransaction | RawTransactionV1
"""Any raw transaction a manager may hold."""


def decode_raw(data: bytes) -> Raw:
    """Decode a stored raw transaction of any supported version."""
    if _frame_version(data, RAW_MAGIC) == 1:
        return RawTransactionV1.from_bytes(data)
    return RawTransaction.from_bytes(data)


def _json_object(obj: object, what: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise BadRequest(f"{what} must be a JSON object")
    return obj


def _json_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{what} must be an integer")
    return value
