"""Changing a party group's members (docs/group-changes.md): the control messages and the
rules every party applies to them, with no I/O.

A change moves a whole group G to G′ (parties added and/or removed) at the block H of its
last approval. Its messages are private transactions to ``GROUP_CHANGE_ADDRESS``, sent to
every party involved (G's members and the added parties); their payloads are JSON. The
manager's envelope authenticates each payload's sender key and party set, and every
recipient checks them against the same rules here, in chain order, so every party
reaches the same status for every change. A refused message changes nothing; its private
receipt has status 0.

The rules use only what every recipient of a message holds alike: the message, its
authenticated sender and parties, and the change record that its proposal created on
each of them. (A newcomer knows nothing else of G, so nothing else may decide.)
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from eth_hash.auto import keccak
from eth_typing import Address

from quorum_shared.json_fields import hex_bytes
from tx_manager.client import privacy_group_id

#: The address control messages are sent to. Nothing is deployed there: the node reads
#: these transactions instead of executing them.
GROUP_CHANGE_ADDRESS = Address(keccak(b"quorum-py/group-change/v1")[12:])
MESSAGE_TYPE = "quorum-py/group-change/v1"

Scope = Literal["state", "full"]
SCOPES: tuple[Scope, ...] = ("state", "full")

VOTING = "voting"
ACTIVE = "active"
CANCELLED = "cancelled"
REFUSED = "refused"


class ChangeMessageError(ValueError):
    """A control message that is not well formed."""


def group_id_of(keys: list[str] | tuple[str, ...]) -> bytes:
    return privacy_group_id([base64.b64decode(key) for key in keys])


# --- messages ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Proposal:
    """Propose moving ``group_id`` to its members plus ``add`` minus ``remove``."""

    group_id: bytes
    add: tuple[str, ...]
    remove: tuple[str, ...]
    scope: Scope = "state"
    contract: bytes | None = None  # the contract named by quorumExtension_extendContract


@dataclass(frozen=True)
class Vote:
    change_id: bytes
    approve: bool


@dataclass(frozen=True)
class Cancel:
    change_id: bytes


@dataclass(frozen=True)
class Handover:
    """An old member's hand-over of G's state at H to the added parties: its signed
    commitment of G's root at H, every account of that state, the private contracts'
    metadata, and (scope ``full``) G's history as a disclosure bundle."""

    change_id: bytes
    commitment: dict[str, Any]
    accounts: tuple[dict[str, Any], ...]
    contracts: tuple[dict[str, Any], ...]
    history: dict[str, Any] | None = None


ControlMessage = Proposal | Vote | Cancel | Handover


def _key_list(body: dict[str, Any], name: str) -> tuple[str, ...]:
    value = body.get(name, [])
    if not isinstance(value, list):
        raise ChangeMessageError(f"{name}: expected a list of base64 manager keys")
    keys = []
    for index, key in enumerate(value):
        try:
            raw = base64.b64decode(key, validate=True) if isinstance(key, str) else b""
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 32:
            raise ChangeMessageError(f"{name}[{index}]: {key!r} is not a base64 32-byte key")
        keys.append(key)
    return tuple(sorted(set(keys)))


def _hex(body: dict[str, Any], name: str, size: int) -> bytes:
    return hex_bytes(body.get(name), name, size, ChangeMessageError)


def encode(message: ControlMessage) -> bytes:
    body: dict[str, Any]
    if isinstance(message, Proposal):
        body = {
            "action": "propose",
            "groupId": "0x" + message.group_id.hex(),
            "add": list(message.add),
            "remove": list(message.remove),
            "scope": message.scope,
        }
        if message.contract is not None:
            body["contract"] = "0x" + message.contract.hex()
    elif isinstance(message, Vote):
        body = {
            "action": "vote",
            "changeId": "0x" + message.change_id.hex(),
            "approve": message.approve,
        }
    elif isinstance(message, Cancel):
        body = {"action": "cancel", "changeId": "0x" + message.change_id.hex()}
    else:
        body = {
            "action": "handover",
            "changeId": "0x" + message.change_id.hex(),
            "commitment": message.commitment,
            "accounts": list(message.accounts),
            "contracts": list(message.contracts),
            "history": message.history,
        }
    return json.dumps({"type": MESSAGE_TYPE, **body}, sort_keys=True).encode()


def decode(payload: bytes) -> ControlMessage:
    """The control message in a payload sent to ``GROUP_CHANGE_ADDRESS``."""
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, ValueError):
        raise ChangeMessageError("not a JSON control message") from None
    if not isinstance(body, dict) or body.get("type") != MESSAGE_TYPE:
        raise ChangeMessageError(f"not a {MESSAGE_TYPE} message")
    action = body.get("action")
    if action == "propose":
        scope = body.get("scope", "state")
        if scope not in SCOPES:
            raise ChangeMessageError(f"scope: {scope!r} is not 'state' or 'full'")
        return Proposal(
            group_id=_hex(body, "groupId", 32),
            add=_key_list(body, "add"),
            remove=_key_list(body, "remove"),
            scope=scope,
            contract=_hex(body, "contract", 20) if "contract" in body else None,
        )
    if action == "vote":
        approve = body.get("approve")
        if not isinstance(approve, bool):
            raise ChangeMessageError("approve: expected true or false")
        return Vote(_hex(body, "changeId", 32), approve)
    if action == "cancel":
        return Cancel(_hex(body, "changeId", 32))
    if action == "handover":
        accounts = body.get("accounts")
        contracts = body.get("contracts")
        commitment = body.get("commitment")
        history = body.get("history")
        if not isinstance(accounts, list) or not isinstance(contracts, list):
            raise ChangeMessageError("accounts and contracts: expected lists")
        if not isinstance(commitment, dict) or not (history is None or isinstance(history, dict)):
            raise ChangeMessageError("commitment (and history): expected objects")
        return Handover(
            _hex(body, "changeId", 32), commitment, tuple(accounts), tuple(contracts), history
        )
    raise ChangeMessageError(f"action: {action!r} is not propose, vote, cancel or handover")


# --- the change record and its rules ---------------------------------------------------


@dataclass(frozen=True)
class GroupChange:
    """What every party of a change holds of it, the same on each."""

    change_id: bytes  # the proposal's transaction hash
    group_id: bytes
    members: tuple[str, ...]  # G's members, sorted
    add: tuple[str, ...]
    remove: tuple[str, ...]
    scope: Scope
    proposer: str
    proposed_block: int
    contract: bytes | None = None
    approvals: tuple[str, ...] = ()
    status: str = VOTING
    final_block: int | None = None  # H when active; the block it ended in otherwise
    reason: str = ""
    events: tuple[dict[str, Any], ...] = field(default=())

    @property
    def new_members(self) -> tuple[str, ...]:
        return tuple(sorted((set(self.members) | set(self.add)) - set(self.remove)))

    @property
    def new_group_id(self) -> bytes:
        return group_id_of(self.new_members)

    @property
    def parties(self) -> tuple[str, ...]:
        """Everyone involved: G's members and the added parties (who all vote)."""
        return tuple(sorted(set(self.members) | set(self.add)))

    @property
    def waiting_for(self) -> tuple[str, ...]:
        return tuple(key for key in self.parties if key not in self.approvals)

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json(), sort_keys=True).encode()

    def to_json(self) -> dict[str, Any]:
        return {
            "changeId": "0x" + self.change_id.hex(),
            "groupId": "0x" + self.group_id.hex(),
            "newGroupId": "0x" + self.new_group_id.hex(),
            "members": list(self.members),
            "newMembers": list(self.new_members),
            "add": list(self.add),
            "remove": list(self.remove),
            "scope": self.scope,
            "proposer": self.proposer,
            "proposedBlock": self.proposed_block,
            "contract": None if self.contract is None else "0x" + self.contract.hex(),
            "approvals": list(self.approvals),
            "waitingFor": list(self.waiting_for) if self.status == VOTING else [],
            "status": self.status,
            "activationBlock": self.final_block if self.status == ACTIVE else None,
            "finalBlock": self.final_block,
            "reason": self.reason,
            "events": list(self.events),
        }

    @classmethod
    def from_bytes(cls, encoded: bytes) -> GroupChange:
        body = json.loads(encoded)
        contract = body["contract"]
        return cls(
            change_id=bytes.fromhex(body["changeId"][2:]),
            group_id=bytes.fromhex(body["groupId"][2:]),
            members=tuple(body["members"]),
            add=tuple(body["add"]),
            remove=tuple(body["remove"]),
            scope=body["scope"],
            proposer=body["proposer"],
            proposed_block=body["proposedBlock"],
            contract=None if contract is None else bytes.fromhex(contract[2:]),
            approvals=tuple(body["approvals"]),
            status=body["status"],
            final_block=body["finalBlock"],
            reason=body["reason"],
            events=tuple(body["events"]),
        )


class Refused(Exception):
    """A control message that the rules refuse; nothing changes (receipt status 0)."""


@dataclass(frozen=True)
class Context:
    """Where a control message was found: authenticated by the manager's envelope."""

    transaction_hash: bytes
    block_number: int
    sender: str  # the payload's sender key
    parties: tuple[str, ...]  # the payload's party set, sorted


def propose(proposal: Proposal, context: Context) -> GroupChange:
    """The change a proposal opens; ``Refused`` if it is not one every party can agree on."""
    parties = set(context.parties)
    added = set(proposal.add)
    members = tuple(sorted(parties - added))
    if not added <= parties:
        raise Refused("the proposal was not sent to every added party")
    if group_id_of(members) != proposal.group_id:
        raise Refused(
            "the proposal's parties are not group "
            f"0x{proposal.group_id.hex()}'s members plus the added parties"
        )
    if context.sender not in members:
        raise Refused("only a member of the group can propose a change of it")
    if not set(proposal.remove) <= set(members):
        raise Refused("a removed party is not a member of the group")
    if not added and not proposal.remove:
        raise Refused("the change adds and removes no one")
    change = GroupChange(
        change_id=context.transaction_hash,
        group_id=proposal.group_id,
        members=members,
        add=proposal.add,
        remove=proposal.remove,
        scope=proposal.scope,
        proposer=context.sender,
        proposed_block=context.block_number,
        contract=proposal.contract,
        approvals=(context.sender,),
    )
    if not change.new_members:
        raise Refused("the change would leave the group without members")
    return _event(change, context, "proposed")


def _check_open(change: GroupChange, context: Context) -> None:
    if change.status != VOTING:
        raise Refused(f"change 0x{change.change_id.hex()} is {change.status}, not open")
    if context.parties != change.parties:
        raise Refused("the message was not sent to exactly the change's parties")
    if context.sender not in change.parties:
        raise Refused("only a party of the change can vote on or cancel it")


def vote(change: GroupChange, message: Vote, context: Context) -> GroupChange:
    """The change after a vote; ``ACTIVE`` (H = this block) once every party approved."""
    _check_open(change, context)
    if not message.approve:
        return _event(
            replace(
                change,
                status=CANCELLED,
                final_block=context.block_number,
                reason=f"rejected by {context.sender}",
            ),
            context,
            "rejected",
        )
    if context.sender in change.approvals:
        raise Refused(f"{context.sender} already approved this change")
    approved = replace(change, approvals=tuple(sorted({*change.approvals, context.sender})))
    approved = _event(approved, context, "approved")
    if approved.waiting_for:
        return approved
    return replace(approved, status=ACTIVE, final_block=context.block_number)


def cancel(change: GroupChange, context: Context) -> GroupChange:
    _check_open(change, context)
    if context.sender not in change.members:
        raise Refused("only the proposer or a member of the group can cancel the change")
    return _event(
        replace(
            change,
            status=CANCELLED,
            final_block=context.block_number,
            reason=f"cancelled by {context.sender}",
        ),
        context,
        "cancelled",
    )


def _event(change: GroupChange, context: Context, what: str) -> GroupChange:
    entry = {
        "event": what,
        "by": context.sender,
        "block": context.block_number,
        "transactionHash": "0x" + context.transaction_hash.hex(),
    }
    return replace(change, events=(*change.events, entry))
