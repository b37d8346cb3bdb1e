"""``privacy.audit.Auditor``: which alarms signed commitments raise, and the status of a
group, with real signatures and no I/O."""

from __future__ import annotations

import hashlib

import pytest

from quorum_node.privacy.audit import LAGGING_GRACE_SECONDS, Alarm, Auditor
from quorum_shared.commitments import (
    CommitmentClaim,
    GroupCommitment,
    identity_seed,
    sign,
    verify,
)

pytestmark = pytest.mark.timeout(10)

A, B, C = (bytes([n]) * 32 for n in (1, 2, 3))
MEMBERS = (A, B, C)
GROUP = hashlib.sha3_256(b"".join(sorted(MEMBERS))).digest()
SEEDS = {member: identity_seed(member + b"private") for member in MEMBERS}
ROOT = b"\x11" * 32
OTHER_ROOT = b"\x22" * 32


def signed(member: bytes, height: int, root: bytes = ROOT) -> GroupCommitment:
    claim = CommitmentClaim(1337, GROUP, height, height.to_bytes(32, "big"), root, member)
    return sign(claim, SEEDS[member])


def feed(auditor: Auditor, *commitments: GroupCommitment) -> list[Alarm]:
    alarms: list[Alarm] = []
    for commitment in commitments:
        alarms += auditor.add(commitment, MEMBERS, {A})
    return alarms


def test_all_members_signing_one_root_agree() -> None:
    auditor = Auditor(interval=10)
    assert feed(auditor, signed(A, 10), signed(B, 10)) == []
    audit = auditor.groups[GROUP]
    assert audit.status(10) == "pending"
    assert audit.agreed_height is None
    assert feed(auditor, signed(C, 10)) == []
    assert audit.status(10) == "agreed"
    assert audit.agreed_height == 10
    assert audit.member_heights == {A: 10, B: 10, C: 10}


def test_a_different_root_is_a_mismatch_with_verifiable_evidence() -> None:
    auditor = Auditor(interval=10)
    feed(auditor, signed(A, 10), signed(B, 10), signed(C, 10))
    alarms = feed(auditor, signed(A, 20), signed(B, 20, OTHER_ROOT))
    assert [(a.kind, a.height, a.member) for a in alarms] == [("mismatch", 20, B)]
    assert {c.claim.member for c in alarms[0].evidence} == {A, B}
    assert all(verify(c) for c in alarms[0].evidence)
    assert auditor.groups[GROUP].status(10) == "mismatch"
    # the third member's commitment at the same height does not raise it again
    assert feed(auditor, signed(C, 20)) == []


def test_mismatch_between_two_others_before_this_member_signed() -> None:
    auditor = Auditor(interval=10)
    alarms = feed(auditor, signed(B, 10), signed(C, 10, OTHER_ROOT))
    assert [(a.kind, a.member) for a in alarms] == [("mismatch", C)]


def test_two_roots_from_one_member_at_one_height_is_equivocation() -> None:
    auditor = Auditor(interval=10)
    feed(auditor, signed(A, 10))
    alarms = feed(auditor, signed(B, 10), signed(B, 10, OTHER_ROOT))
    kinds = sorted(a.kind for a in alarms)
    assert "equivocation" in kinds
    equivocation = next(a for a in alarms if a.kind == "equivocation")
    assert equivocation.member == B
    assert {c.claim.root for c in equivocation.evidence} == {ROOT, OTHER_ROOT}
    assert auditor.groups[GROUP].status(10) == "equivocation"


def test_the_same_commitment_twice_changes_nothing() -> None:
    auditor = Auditor(interval=10)
    commitment = signed(B, 10)
    feed(auditor, signed(A, 10), commitment)
    assert feed(auditor, commitment) == []
    assert auditor.groups[GROUP].alarms == []


def test_a_member_three_intervals_behind_is_lagging_until_it_catches_up() -> None:
    auditor = Auditor(interval=10)
    feed(auditor, *(signed(m, 10) for m in MEMBERS))
    feed(auditor, signed(A, 20), signed(B, 20), signed(A, 30), signed(B, 30))
    assert auditor.check_lagging(now=100.0) == []
    feed(auditor, signed(A, 40), signed(B, 40))
    # three intervals behind, but not yet for the grace period: a busy member, not a silent one
    assert auditor.check_lagging(now=101.0) == []
    assert auditor.groups[GROUP].status(10) == "agreed"
    alarms = auditor.check_lagging(now=101.0 + LAGGING_GRACE_SECONDS)
    assert [(a.kind, a.member, a.height) for a in alarms] == [("lagging", C, 10)]
    assert alarms[0].evidence and alarms[0].evidence[0].claim.block_number == 10
    assert auditor.groups[GROUP].status(10) == "lagging"
    assert auditor.check_lagging(now=200.0) == []  # raised once
    feed(auditor, signed(C, 40))
    auditor.check_lagging(now=201.0)
    assert auditor.groups[GROUP].status(10) == "agreed"
    assert auditor.groups[GROUP].agreed_height == 40


def test_a_member_that_never_signed_lags_from_this_members_first_height() -> None:
    auditor = Auditor(interval=5)
    for height in (5, 10, 15, 20):
        feed(auditor, signed(A, height), signed(B, height))
    assert auditor.check_lagging(now=0.0) == []
    assert [a.member for a in auditor.check_lagging(now=LAGGING_GRACE_SECONDS)] == [C]


def test_a_member_that_catches_up_within_the_grace_period_raises_nothing() -> None:
    auditor = Auditor(interval=1)
    feed(auditor, *(signed(m, 1) for m in MEMBERS))
    for height in (2, 3, 4, 5):
        feed(auditor, signed(A, height), signed(B, height))
    assert auditor.check_lagging(now=0.0) == []
    feed(auditor, signed(C, 5))
    assert auditor.check_lagging(now=LAGGING_GRACE_SECONDS + 1) == []
    assert auditor.groups[GROUP].alarms == []


def test_restored_alarms_are_listed_and_not_raised_again() -> None:
    first = Auditor(interval=10)
    (alarm,) = feed(first, signed(A, 10), signed(B, 10, OTHER_ROOT))
    second = Auditor(interval=10)
    second.restore(alarm)
    assert feed(second, signed(A, 10), signed(B, 10, OTHER_ROOT)) == []
    assert second.groups[GROUP].alarms == [alarm]
    assert second.groups[GROUP].status(10) == "mismatch"


def test_alarm_json_names_everything_a_verifier_needs() -> None:
    auditor = Auditor(interval=10)
    (alarm,) = feed(auditor, signed(A, 10), signed(B, 10, OTHER_ROOT))
    as_json = alarm.to_json()
    assert as_json["kind"] == "mismatch"
    assert as_json["groupId"] == "0x" + GROUP.hex()
    assert as_json["height"] == 10
    evidence = [GroupCommitment.from_json(item) for item in as_json["evidence"]]
    assert evidence == list(alarm.evidence)
