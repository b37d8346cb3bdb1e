"""JSON messages of the group-commitment endpoints (Q2T ``/commitments``, ``/identity``;
P2P ``/commitments/push``), as frozen dataclasses in the style of ``messages``.

A signed commitment travels as ``quorum_shared.commitments.GroupCommitment.to_json``
everywhere, so the node and any third party verify the very JSON a manager answered.
Hashes, ids, roots, signer keys and tags are ``0x`` hex (Ethereum's habit, as in the
commitment itself); manager keys are standard base64 (Tessera's). Parsing raises
``BadRequest`` naming the field at fault, ``RequestTooLarge`` beyond
``MAX_COMMITMENTS`` items.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from quorum_shared.commitments import CommitmentClaim, CommitmentFormatError, GroupCommitment
from tx_manager.errors import BadRequest, RequestTooLarge
from tx_manager.fields import hex_field
from tx_manager.messages import JsonMessage, parse_key
from tx_manager.payload import b64encode

MAX_COMMITMENTS = 1000
"""Most items in one ``/commitments`` request, page or ``/commitments/push``."""

_MAX_UINT64 = 2**64 - 1


def _object(obj: object, what: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise BadRequest(f"{what} must be a JSON object")
    return obj


def _list(obj: dict[str, Any], name: str) -> list[Any]:
    value = obj.get(name)
    if not isinstance(value, list):
        raise BadRequest(f"{name} must be a JSON list")
    if len(value) > MAX_COMMITMENTS:
        raise RequestTooLarge(f"{name} has {len(value)} items, at most {MAX_COMMITMENTS} allowed")
    return value


def _uint64(obj: dict[str, Any], name: str) -> int:
    value = obj.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_UINT64:
        raise BadRequest(f"{name} must be an integer 0..2^64-1")
    return value


def _members(obj: dict[str, Any]) -> tuple[str, ...]:
    value = obj.get("members")
    if not isinstance(value, list) or not value:
        raise BadRequest("members must be a non-empty list of base64 keys")
    if len(value) > MAX_COMMITMENTS:
        raise BadRequest(f"members has {len(value)} keys, at most {MAX_COMMITMENTS} allowed")
    return tuple(b64encode(parse_key(item, "members")) for item in value)


def _commitment(value: object) -> GroupCommitment:
    try:
        return GroupCommitment.from_json(value)
    except CommitmentFormatError as exc:
        raise BadRequest(f"commitment: {exc}") from exc


def member_keys(members: tuple[str, ...]) -> tuple[bytes, ...]:
    """The raw keys of a group's ``members`` (already checked when parsed)."""
    return tuple(parse_key(member, "members") for member in members)


@dataclass(frozen=True)
class CommitmentRequest:
    """What a node asks its manager to sign: a claim without its member, and the group's
    keys (the manager signs once for each of them that it holds)."""

    chain_id: int
    group_id: bytes
    block_number: int
    block_hash: bytes
    root: bytes
    members: tuple[str, ...]  # base64 manager keys of the group

    def claim_for(self, member: bytes) -> CommitmentClaim:
        try:
            return CommitmentClaim(
                chain_id=self.chain_id,
                group_id=self.group_id,
                block_number=self.block_number,
                block_hash=self.block_hash,
                root=self.root,
                member=member,
            )
        except CommitmentFormatError as exc:
            raise BadRequest(f"commitment: {exc}") from exc

    def to_json(self) -> dict[str, Any]:
        return {
            "chainId": self.chain_id,
            "groupId": "0x" + self.group_id.hex(),
            "blockNumber": self.block_number,
            "blockHash": "0x" + self.block_hash.hex(),
            "root": "0x" + self.root.hex(),
            "members": list(self.members),
        }

    @classmethod
    def from_json(cls, obj: object) -> CommitmentRequest:
        body = _object(obj, "commitment request")
        return cls(
            chain_id=_uint64(body, "chainId"),
            group_id=hex_field(body, "groupId"),
            block_number=_uint64(body, "blockNumber"),
            block_hash=hex_field(body, "blockHash"),
            root=hex_field(body, "root"),
            members=_members(body),
        )


@dataclass(frozen=True)
class CommitRequest(JsonMessage):
    """``POST /commitments`` (Q2T)."""

    commitments: tuple[CommitmentRequest, ...]

    def to_json(self) -> dict[str, Any]:
        return {"commitments": [item.to_json() for item in self.commitments]}

    @classmethod
    def from_json(cls, obj: object) -> CommitRequest:
        body = _object(obj, "commit request")
        return cls(tuple(CommitmentRequest.from_json(i) for i in _list(body, "commitments")))


@dataclass(frozen=True)
class CommitResponse(JsonMessage):
    """The signed commitments, one per (request item, local member key), in order."""

    commitments: tuple[GroupCommitment, ...]

    def to_json(self) -> dict[str, Any]:
        return {"commitments": [c.to_json() for c in self.commitments]}

    @classmethod
    def from_json(cls, obj: object) -> CommitResponse:
        body = _object(obj, "commit response")
        return cls(tuple(_commitment(item) for item in _list(body, "commitments")))


@dataclass(frozen=True)
class StoredCommitment:
    """One stored commitment: this manager's own (``own``) or received from a member.

    ``seq`` orders the store (``GET /commitments?after=``); 0 before it is stored.
    """

    seq: int
    own: bool
    members: tuple[str, ...]
    commitment: GroupCommitment

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "own": self.own,
            "members": list(self.members),
            "commitment": self.commitment.to_json(),
        }

    @classmethod
    def from_json(cls, obj: object) -> StoredCommitment:
        body = _object(obj, "stored commitment")
        own = body.get("own")
        if not isinstance(own, bool):
            raise BadRequest("own must be true or false")
        return cls(
            seq=_uint64(body, "seq"),
            own=own,
            members=_members(body),
            commitment=_commitment(body.get("commitment")),
        )


@dataclass(frozen=True)
class CommitmentPage(JsonMessage):
    """``GET /commitments``: ``next`` is the ``after`` of the following page."""

    items: tuple[StoredCommitment, ...]
    next: int

    def to_json(self) -> dict[str, Any]:
        return {"commitments": [item.to_json() for item in self.items], "next": self.next}

    @classmethod
    def from_json(cls, obj: object) -> CommitmentPage:
        body = _object(obj, "commitment page")
        items = tuple(StoredCommitment.from_json(i) for i in _list(body, "commitments"))
        return cls(items, _uint64(body, "next"))


@dataclass(frozen=True)
class IdentityResponse(JsonMessage):
    """``GET /identity``: each local manager key and its Ed25519 signer key."""

    identities: tuple[tuple[bytes, bytes], ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "keys": [
                {"key": b64encode(key), "signer": "0x" + signer.hex()}
                for key, signer in self.identities
            ]
        }

    @classmethod
    def from_json(cls, obj: object) -> IdentityResponse:
        body = _object(obj, "identity response")
        entries = [_object(entry, "identity") for entry in _list(body, "keys")]
        return cls(tuple((parse_key(e.get("key"), "key"), hex_field(e, "signer")) for e in entries))


@dataclass(frozen=True)
class CommitmentPushItem:
    """A commitment on its way to one other member, with the tag binding its signer to
    its member for that receiver (``Enclave.binding_tag``)."""

    commitment: GroupCommitment
    members: tuple[str, ...]
    binding: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "commitment": self.commitment.to_json(),
            "members": list(self.members),
            "binding": "0x" + self.binding.hex(),
        }

    @classmethod
    def from_json(cls, obj: object) -> CommitmentPushItem:
        body = _object(obj, "pushed commitment")
        return cls(
            commitment=_commitment(body.get("commitment")),
            members=_members(body),
            binding=hex_field(body, "binding"),
        )


@dataclass(frozen=True)
class CommitmentPush(JsonMessage):
    """``POST /commitments/push`` (P2P): commitments for the receiver's key ``to``."""

    to: bytes
    items: tuple[CommitmentPushItem, ...]

    def to_json(self) -> dict[str, Any]:
        return {"to": b64encode(self.to), "items": [item.to_json() for item in self.items]}

    @classmethod
    def from_json(cls, obj: object) -> CommitmentPush:
        body = _object(obj, "commitment push")
        return cls(
            to=parse_key(body.get("to"), "to"),
            items=tuple(CommitmentPushItem.from_json(i) for i in _list(body, "items")),
        )


@dataclass(frozen=True)
class CommitmentPushResult(JsonMessage):
    stored: int

    def to_json(self) -> dict[str, Any]:
        return {"stored": self.stored}

    @classmethod
    def from_json(cls, obj: object) -> CommitmentPushResult:
        return cls(_uint64(_object(obj, "push result"), "stored"))
