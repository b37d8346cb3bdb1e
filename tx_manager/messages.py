"""JSON messages of the Q2T and P2P APIs, as frozen dataclasses.

Field names are Tessera's (so tools written for it keep working); bytes are
standard base64. The JSON messages carry no version field of their own, to
stay wire-compatible: they are versioned as a whole by ``API_VERSION`` (served
at ``GET /version/api``). ``to_bytes``/``from_bytes`` are the UTF-8 JSON bodies.
Parsing raises ``BadRequest`` naming the field at fault.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, TypeVar

from tx_manager.codec import FrameReader, FrameWriter
from tx_manager.errors import BadRequest, EnvelopeDecodeError
from tx_manager.payload import (
    HASH_SIZE,
    KEY_SIZE,
    Envelope,
    PrivacyMode,
    b64decode,
    b64encode,
    decode_envelope,
    parse_privacy_mode,
)

API_VERSION = "1.0"

J = TypeVar("J", bound="JsonMessage")


class JsonMessage:
    """Mixin: bytes are the JSON text of ``to_json``."""

    def to_json(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_json(cls: type[J], obj: object) -> J:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json(), separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls: type[J], data: bytes) -> J:
        try:
            obj = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest("body is not valid JSON") from exc
        return cls.from_json(obj)


def _object(obj: object, what: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise BadRequest(f"{what} must be a JSON object")
    return obj


def parse_key(value: object, what: str) -> bytes:
    """A base64 32-byte public key; ``BadRequest`` naming ``what`` otherwise."""
    key = b64decode(value, what)
    if len(key) != KEY_SIZE:
        raise BadRequest(f"{what} must be a base64 {KEY_SIZE}-byte key")
    return key


def _optional_key(obj: dict[str, Any], name: str) -> bytes | None:
    value = obj.get(name)
    if value is None or value == "":
        return None
    return parse_key(value, name)


def _key_list(obj: dict[str, Any], name: str, required: bool = False) -> tuple[bytes, ...]:
    value = obj.get(name)
    if value is None:
        if required:
            raise BadRequest(f"{name} is missing")
        return ()
    if not isinstance(value, list):
        raise BadRequest(f"{name} must be a list of base64 keys")
    return tuple(parse_key(item, name) for item in value)


def _hash_list(obj: dict[str, Any], name: str) -> tuple[bytes, ...]:
    value = obj.get(name)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise BadRequest(f"{name} must be a list of base64 hashes")
    hashes = tuple(b64decode(item, name) for item in value)
    if any(len(h) != HASH_SIZE for h in hashes):
        raise BadRequest(f"{name} entries must be {HASH_SIZE}-byte hashes")
    return hashes


def _payload(obj: dict[str, Any]) -> bytes:
    if "payload" not in obj:
        raise BadRequest("payload is missing")
    return b64decode(obj["payload"], "payload")


def _hash(value: object, what: str) -> bytes:
    tx_hash = b64decode(value, what)
    if len(tx_hash) != HASH_SIZE:
        raise BadRequest(f"{what} must be a base64 {HASH_SIZE}-byte hash")
    return tx_hash


def _optional_bytes(obj: dict[str, Any], name: str) -> bytes:
    value = obj.get(name)
    return b"" if value is None else b64decode(value, name)


@dataclass(frozen=True)
class PrivacyOptions:
    """The privacy fields shared by /send and /sendsignedtx."""

    privacy_flag: PrivacyMode = PrivacyMode.STANDARD
    affected_contract_transactions: tuple[bytes, ...] = ()
    exec_hash: bytes = b""
    mandatory_recipients: tuple[bytes, ...] = ()

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> PrivacyOptions:
        return cls(
            privacy_flag=parse_privacy_mode(obj.get("privacyFlag", 0)),
            affected_contract_transactions=_hash_list(obj, "affectedContractTransactions"),
            exec_hash=_optional_bytes(obj, "execHash"),
            mandatory_recipients=_key_list(obj, "mandatoryRecipients"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "privacyFlag": int(self.privacy_flag),
            "affectedContractTransactions": [
                b64encode(h) for h in self.affected_contract_transactions
            ],
            "execHash": b64encode(self.exec_hash),
            "mandatoryRecipients": [b64encode(k) for k in self.mandatory_recipients],
        }


@dataclass(frozen=True)
class SendRequest(JsonMessage):
    payload: bytes
    to: tuple[bytes, ...]
    from_key: bytes | None = None
    options: PrivacyOptions = PrivacyOptions()

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"payload": b64encode(self.payload)}
        if self.from_key is not None:
            body["from"] = b64encode(self.from_key)
        body["to"] = [b64encode(k) for k in self.to]
        body.update(self.options.to_json())
        return body

    @classmethod
    def from_json(cls, obj: object) -> SendRequest:
        body = _object(obj, "send request")
        return cls(
            payload=_payload(body),
            to=_key_list(body, "to"),
            from_key=_optional_key(body, "from"),
            options=PrivacyOptions.parse(body),
        )


@dataclass(frozen=True)
class SendResponse(JsonMessage):
    key: bytes
    managed_parties: tuple[bytes, ...]
    sender_key: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "key": b64encode(self.key),
            "managedParties": [b64encode(k) for k in self.managed_parties],
            "senderKey": b64encode(self.sender_key),
        }

    @classmethod
    def from_json(cls, obj: object) -> SendResponse:
        body = _object(obj, "send response")
        return cls(
            key=_hash(body.get("key"), "key"),
            managed_parties=_key_list(body, "managedParties"),
            sender_key=parse_key(body.get("senderKey"), "senderKey"),
        )


@dataclass(frozen=True)
class StoreRawRequest(JsonMessage):
    """Tessera's ``{payload, from?}``, plus optional ``to`` and privacy options.

    With ``to`` (even an empty list) the party group and options are fixed now,
    under the hash, and ``/sendsignedtx`` must repeat them. Without it (Tessera,
    web3js-quorum) they are chosen at ``/sendsignedtx``; privacy options without
    ``to`` are refused, since there would be no group to fix them with.
    """

    payload: bytes
    from_key: bytes | None = None
    to: tuple[bytes, ...] | None = None
    options: PrivacyOptions = PrivacyOptions()

    def __post_init__(self) -> None:
        if self.to is None and self.options != PrivacyOptions():
            raise BadRequest("privacy options at /storeraw need 'to' (the recipients) as well")

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"payload": b64encode(self.payload)}
        if self.from_key is not None:
            body["from"] = b64encode(self.from_key)
        if self.to is not None:
            body["to"] = [b64encode(k) for k in self.to]
            body.update(self.options.to_json())
        return body

    @classmethod
    def from_json(cls, obj: object) -> StoreRawRequest:
        body = _object(obj, "storeraw request")
        return cls(
            payload=_payload(body),
            from_key=_optional_key(body, "from"),
            to=_key_list(body, "to") if body.get("to") is not None else None,
            options=PrivacyOptions.parse(body),
        )


@dataclass(frozen=True)
class StoreRawResponse(JsonMessage):
    key: bytes

    def to_json(self) -> dict[str, Any]:
        return {"key": b64encode(self.key)}

    @classmethod
    def from_json(cls, obj: object) -> StoreRawResponse:
        return cls(key=_hash(_object(obj, "storeraw response").get("key"), "key"))


@dataclass(frozen=True)
class SendSignedRequest(JsonMessage):
    hash: bytes
    to: tuple[bytes, ...]
    options: PrivacyOptions = PrivacyOptions()

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"hash": b64encode(self.hash), "to": [b64encode(k) for k in self.to]}
        body.update(self.options.to_json())
        return body

    @classmethod
    def from_json(cls, obj: object) -> SendSignedRequest:
        body = _object(obj, "sendsignedtx request")
        if "hash" not in body:
            raise BadRequest("hash is missing")
        return cls(
            hash=_hash(body["hash"], "hash"),
            to=_key_list(body, "to"),
            options=PrivacyOptions.parse(body),
        )


@dataclass(frozen=True)
class ReceiveResponse(JsonMessage):
    """Tessera's receive response, plus ``parties`` (every key of the party group) and
    ``mandatoryRecipients`` (flag 2; the name Tessera's send request uses)."""

    payload: bytes
    privacy_flag: PrivacyMode
    affected_contract_transactions: tuple[bytes, ...]
    exec_hash: bytes
    managed_parties: tuple[bytes, ...]
    sender_key: bytes
    parties: tuple[bytes, ...]
    privacy_group_id: bytes
    mandatory_recipients: tuple[bytes, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "payload": b64encode(self.payload),
            "privacyFlag": int(self.privacy_flag),
            "affectedContractTransactions": [
                b64encode(h) for h in self.affected_contract_transactions
            ],
            "execHash": b64encode(self.exec_hash),
            "managedParties": [b64encode(k) for k in self.managed_parties],
            "senderKey": b64encode(self.sender_key),
            "parties": [b64encode(k) for k in self.parties],
            "privacyGroupId": b64encode(self.privacy_group_id),
            "mandatoryRecipients": [b64encode(k) for k in self.mandatory_recipients],
        }

    @classmethod
    def from_json(cls, obj: object) -> ReceiveResponse:
        body = _object(obj, "receive response")
        return cls(
            payload=_payload(body),
            privacy_flag=parse_privacy_mode(body.get("privacyFlag", 0)),
            affected_contract_transactions=_hash_list(body, "affectedContractTransactions"),
            exec_hash=_optional_bytes(body, "execHash"),
            managed_parties=_key_list(body, "managedParties"),
            sender_key=parse_key(body.get("senderKey"), "senderKey"),
            parties=_key_list(body, "parties"),
            privacy_group_id=_optional_bytes(body, "privacyGroupId"),
            mandatory_recipients=_key_list(body, "mandatoryRecipients"),
        )


@dataclass(frozen=True)
class KeysResponse(JsonMessage):
    keys: tuple[bytes, ...]

    def to_json(self) -> dict[str, Any]:
        return {"keys": [{"key": b64encode(k)} for k in self.keys]}

    @classmethod
    def from_json(cls, obj: object) -> KeysResponse:
        entries = _object(obj, "keys response").get("keys")
        if not isinstance(entries, list):
            raise BadRequest("keys must be a list")
        return cls(
            keys=tuple(parse_key(_object(e, "key entry").get("key"), "key") for e in entries)
        )


@dataclass(frozen=True)
class ReceiveManyRequest(JsonMessage):
    """``POST /transactions``: several ``GET /transaction/{hash}`` in one request (our
    extension; a node asks for every private payload of a block at once)."""

    keys: tuple[bytes, ...]
    to: bytes | None = None

    MAX_KEYS = 1000

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"keys": [b64encode(key) for key in self.keys]}
        if self.to is not None:
            body["to"] = b64encode(self.to)
        return body

    @classmethod
    def from_json(cls, obj: object) -> ReceiveManyRequest:
        body = _object(obj, "receive request")
        keys = body.get("keys")
        if not isinstance(keys, list):
            raise BadRequest("keys must be a list of base64 hashes")
        if len(keys) > cls.MAX_KEYS:
            raise BadRequest(f"at most {cls.MAX_KEYS} keys per request, got {len(keys)}")
        return cls(keys=tuple(_hash(key, "keys") for key in keys), to=_optional_key(body, "to"))


@dataclass(frozen=True)
class ReceiveManyResponse(JsonMessage):
    """One answer per key, in order: the receive response, or null where this manager
    holds no such transaction for a local key (the 404 of the single read)."""

    found: tuple[ReceiveResponse | None, ...]

    def to_json(self) -> dict[str, Any]:
        return {"transactions": [None if r is None else r.to_json() for r in self.found]}

    @classmethod
    def from_json(cls, obj: object) -> ReceiveManyResponse:
        body = _object(obj, "receive response")
        items = body.get("transactions")
        if not isinstance(items, list):
            raise BadRequest("transactions must be a list")
        return cls(
            found=tuple(None if item is None else ReceiveResponse.from_json(item) for item in items)
        )


@dataclass(frozen=True)
class PartyInfo(JsonMessage):
    """What one manager tells another: its URL, the peers it knows, who holds which key."""

    url: str
    peers: tuple[str, ...]
    keys: tuple[tuple[bytes, str], ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "peers": [{"url": url} for url in self.peers],
            "keys": [{"key": b64encode(key), "url": url} for key, url in self.keys],
        }

    @classmethod
    def from_json(cls, obj: object) -> PartyInfo:
        body = _object(obj, "partyinfo")
        url = body.get("url")
        peers = body.get("peers", [])
        keys = body.get("keys", [])
        if not isinstance(url, str) or not isinstance(peers, list) or not isinstance(keys, list):
            raise BadRequest("partyinfo needs url (string), peers and keys (lists)")
        peer_urls = tuple(_url(_object(p, "peer").get("url")) for p in peers)
        claims = tuple(
            (parse_key(_object(k, "key entry").get("key"), "key"), _url(k.get("url"))) for k in keys
        )
        return cls(url=_url(url), peers=peer_urls, keys=claims)


def _url(value: object) -> str:
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise BadRequest("urls must be http(s) strings")
    return value.rstrip("/")


@dataclass(frozen=True)
class ValidationRequest(JsonMessage):
    """A challenge: ``box`` seals a random value from ``from_key`` to ``to_key``."""

    from_key: bytes
    to_key: bytes
    nonce: bytes
    box: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "from": b64encode(self.from_key),
            "to": b64encode(self.to_key),
            "nonce": b64encode(self.nonce),
            "box": b64encode(self.box),
        }

    @classmethod
    def from_json(cls, obj: object) -> ValidationRequest:
        body = _object(obj, "validation request")
        return cls(
            from_key=parse_key(body.get("from"), "from"),
            to_key=parse_key(body.get("to"), "to"),
            nonce=b64decode(body.get("nonce"), "nonce"),
            box=b64decode(body.get("box"), "box"),
        )


@dataclass(frozen=True)
class ValidationResponse(JsonMessage):
    value: bytes

    def to_json(self) -> dict[str, Any]:
        return {"value": b64encode(self.value)}

    @classmethod
    def from_json(cls, obj: object) -> ValidationResponse:
        return cls(value=b64decode(_object(obj, "validation response").get("value"), "value"))


@dataclass(frozen=True)
class ResendRequest(JsonMessage):
    type: str
    public_key: bytes
    key: bytes | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, "publicKey": b64encode(self.public_key)}
        if self.key is not None:
            body["key"] = b64encode(self.key)
        return body

    @classmethod
    def from_json(cls, obj: object) -> ResendRequest:
        body = _object(obj, "resend request")
        kind = body.get("type")
        if kind not in ("ALL", "INDIVIDUAL"):
            raise BadRequest('type must be "ALL" or "INDIVIDUAL"')
        key = None
        if kind == "INDIVIDUAL":
            if "key" not in body:
                raise BadRequest("key is missing for an INDIVIDUAL resend")
            key = _hash(body["key"], "key")
        return cls(type=kind, public_key=parse_key(body.get("publicKey"), "publicKey"), key=key)


@dataclass(frozen=True)
class ResendResponse(JsonMessage):
    pushed: int

    def to_json(self) -> dict[str, Any]:
        return {"pushed": self.pushed}

    @classmethod
    def from_json(cls, obj: object) -> ResendResponse:
        pushed = _object(obj, "resend response").get("pushed")
        if not isinstance(pushed, int):
            raise BadRequest("pushed must be an integer")
        return cls(pushed=pushed)


BATCH_MAGIC = b"QTMB"
BATCH_VERSION = 1


@dataclass(frozen=True)
class EnvelopeBatch:
    """Several envelopes in one P2P request (``/pushBatch``), binary like the envelope.

    Each item carries its own envelope version, so one batch may mix versions.
    """

    envelopes: tuple[Envelope, ...]
    version: int = BATCH_VERSION

    def to_bytes(self) -> bytes:
        writer = FrameWriter(BATCH_MAGIC, self.version)
        writer.blobs([envelope.to_bytes() for envelope in self.envelopes])
        return writer.finish()

    @classmethod
    def from_bytes(cls, data: bytes) -> EnvelopeBatch:
        reader = FrameReader(data, BATCH_MAGIC, "envelope batch")
        if reader.version != BATCH_VERSION:
            raise EnvelopeDecodeError(f"batch version {reader.version} is not supported")
        items = reader.blobs()
        reader.end()
        return cls(envelopes=tuple(decode_envelope(item) for item in items))
