"""The rules every party applies to group-change messages (``privacy.group_change``) and
the hand-over's rebuild of a state (``privacy.handover``), in process: no node, no
manager."""

from __future__ import annotations

import base64
from dataclasses import replace

import pytest
from eth.constants import BLANK_ROOT_HASH
from eth.db.account import AccountDB
from eth.db.atomic import AtomicDB
from eth_typing import Address

from quorum_node.privacy import group_change as gc
from quorum_node.privacy.handover import (
    HandoverError,
    collect_accounts,
    differing_accounts,
    rebuild,
)

A, B, C, D = (base64.b64encode(bytes([n]) * 32).decode() for n in (1, 2, 3, 4))
G = gc.group_id_of([A, B])
TX = b"\x11" * 32


def context(sender: str, parties: list[str], block: int = 5, tx: bytes = TX) -> gc.Context:
    return gc.Context(tx, block, sender, tuple(sorted(parties)))


def proposed() -> gc.GroupChange:
    return gc.propose(gc.Proposal(G, (C,), ()), context(A, [A, B, C]))


def test_messages_round_trip_and_malformed_ones_are_refused() -> None:
    for message in (
        gc.Proposal(G, (C,), (B,), "full", b"\x01" * 20),
        gc.Vote(TX, True),
        gc.Cancel(TX),
        gc.Handover(TX, {"root": "0x00"}, ({"key": "0x01"},), (), None),
    ):
        assert gc.decode(gc.encode(message)) == message
    for payload in (b"\x60\x00", b"{}", b'{"type": "quorum-py/group-change/v1", "action": "x"}'):
        with pytest.raises(gc.ChangeMessageError):
            gc.decode(payload)
    bad_key = b'{"type": "quorum-py/group-change/v1", "action": "propose", "groupId": "0x' + (
        b"00" * 32 + b'", "add": ["short"]}'
    )
    with pytest.raises(gc.ChangeMessageError, match="add"):
        gc.decode(bad_key)


def test_a_proposal_must_come_from_a_member_to_exactly_the_members_and_the_added() -> None:
    change = proposed()
    assert change.members == tuple(sorted([A, B])) and change.new_group_id == gc.group_id_of(
        [A, B, C]
    )
    assert change.approvals == (A,) and set(change.waiting_for) == {B, C}
    # An outsider's own key is among its message's parties, so they are never G's.
    with pytest.raises(gc.Refused, match="members plus the added"):
        gc.propose(gc.Proposal(G, (), (A,)), context(D, [A, B, D]))
    with pytest.raises(gc.Refused, match="members plus the added"):
        gc.propose(gc.Proposal(G, (C,), ()), context(A, [A, C]))
    with pytest.raises(gc.Refused, match="adds and removes no one"):
        gc.propose(gc.Proposal(G, (), ()), context(A, [A, B]))
    with pytest.raises(gc.Refused, match="without members"):
        gc.propose(gc.Proposal(G, (), (A, B)), context(A, [A, B]))


def test_every_party_approves_once_and_the_last_approval_activates() -> None:
    change = gc.vote(proposed(), gc.Vote(TX, True), context(B, [A, B, C], block=6))
    assert change.status == gc.VOTING
    with pytest.raises(gc.Refused, match="already approved"):
        gc.vote(change, gc.Vote(TX, True), context(B, [A, B, C], block=7))
    with pytest.raises(gc.Refused, match="exactly the change's parties"):
        gc.vote(change, gc.Vote(TX, True), context(D, [A, B, C, D], block=7))
    active = gc.vote(change, gc.Vote(TX, True), context(C, [A, B, C], block=8))
    assert active.status == gc.ACTIVE and active.final_block == 8
    with pytest.raises(gc.Refused, match="not open"):
        gc.cancel(active, context(A, [A, B, C], block=9))
    assert gc.GroupChange.from_bytes(active.to_bytes()) == active


def test_a_member_cancels_and_a_rejection_ends_the_change() -> None:
    with pytest.raises(gc.Refused, match="proposer or a member"):
        gc.cancel(proposed(), context(C, [A, B, C]))
    cancelled = gc.cancel(proposed(), context(B, [A, B, C], block=9))
    assert cancelled.status == gc.CANCELLED and B in cancelled.reason
    rejected = gc.vote(proposed(), gc.Vote(TX, False), context(C, [A, B, C]))
    assert rejected.status == gc.CANCELLED and "rejected" in rejected.reason


def _state() -> tuple[AtomicDB, bytes, Address]:
    db = AtomicDB()
    accounts = AccountDB(db, BLANK_ROOT_HASH)
    contract = Address(b"\x42" * 20)
    accounts.set_code(contract, b"\x60\x00")
    accounts.set_storage(contract, 1, 77)
    accounts.set_nonce(Address(b"\x43" * 20), 3)
    accounts.persist()
    return db, bytes(accounts.state_root), contract


def test_a_handed_over_state_rebuilds_to_its_root_and_a_changed_one_does_not() -> None:
    db, root, contract = _state()
    accounts = collect_accounts(db, root)
    rebuilt = rebuild(accounts)
    assert rebuilt.root == root

    fresh = AtomicDB()
    rebuilt.install(fresh)
    assert AccountDB(fresh, root).get_storage(contract, 1) == 77

    fewer = rebuild(accounts[1:])
    assert fewer.root != root
    differing = differing_accounts(fewer.accounts, rebuilt.accounts, [contract])
    assert len(differing) == 1 and differing[0]["offered"] is None

    tampered = [dict(entry) for entry in accounts]
    target = next(entry for entry in tampered if entry["storage"])
    target["storage"] = [[target["storage"][0][0], "0x4e"]]
    with pytest.raises(HandoverError, match="storage root"):
        rebuild(tampered)
    wrong_code = [replace_code(entry) for entry in accounts]
    with pytest.raises(HandoverError, match="code hash"):
        rebuild(wrong_code)


def replace_code(entry: dict[str, object]) -> dict[str, object]:
    return {**entry, "code": "0x6001"} if entry["code"] != "0x" else entry


def test_the_change_record_keeps_its_fields() -> None:
    change = replace(proposed(), contract=b"\x09" * 20)
    assert gc.GroupChange.from_bytes(change.to_bytes()) == change
