"""Deciding, from signed group-root commitments, whether a party group's members agree.

Pure and synchronous: ``Auditor.add`` takes one verified commitment (this member's own or
another member's) and answers the alarms it raises; ``Auditor.check_lagging`` raises the
alarms that come from silence. ``privacy.commitments`` feeds it from the manager and acts
on what it answers (log, store, notify). The three alarms:

* **mismatch**: two members signed different roots for the same group and height;
* **equivocation**: one member signed two different roots for the same group and height;
* **lagging**: a member's last commitment is ``LAGGING_INTERVALS`` commitment intervals
  (counted in blocks) behind this member's own last one, and has stayed behind for
  ``LAGGING_GRACE_SECONDS`` (with short intervals and 50 ms blocks, three intervals pass
  in a fraction of a second, and a member on a busy machine is that late without being
  silent).

Every alarm carries the signed commitments that prove it, so whoever receives it can
check it offline (``quorum_shared.commitments.verify``).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from quorum_shared.commitments import GroupCommitment

LAGGING_INTERVALS = 3
LAGGING_GRACE_SECONDS = 5.0
#: Heights kept below the highest agreed one, to catch a late second signature there.
KEPT_BELOW_AGREED = 64
#: Heights kept per group while they are not agreed (a member that stays silent must not
#: grow memory without end; the oldest are dropped first).
MAX_OPEN_HEIGHTS = 10_000

STATUSES = ("agreed", "mismatch", "equivocation", "lagging", "pending")


@dataclass(frozen=True)
class Alarm:
    kind: str  # "mismatch" | "equivocation" | "lagging"
    group_id: bytes
    height: int
    member: bytes  # the member the alarm is about (its X25519 manager key)
    evidence: tuple[GroupCommitment, ...]

    @property
    def key(self) -> tuple[str, bytes, int, bytes]:
        """One alarm per kind, group, height and member: seen again, it is not new."""
        return (self.kind, self.group_id, self.height, self.member)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "groupId": "0x" + self.group_id.hex(),
            "height": self.height,
            "member": base64.b64encode(self.member).decode(),
            "evidence": [commitment.to_json() for commitment in self.evidence],
        }


@dataclass
class GroupAudit:
    """What this member knows of one group's commitments."""

    group_id: bytes
    members: tuple[bytes, ...]
    own: frozenset[bytes]  # the members whose key this node's manager holds
    # height → member → root → the signed commitment
    heights: dict[int, dict[bytes, dict[bytes, GroupCommitment]]] = field(default_factory=dict)
    member_heights: dict[bytes, int] = field(default_factory=dict)
    agreed_height: int | None = None
    first_own_height: int | None = None
    alarms: list[Alarm] = field(default_factory=list)
    #: member → when it was first seen behind (``Auditor.check_lagging``'s clock)
    behind_since: dict[bytes, float] = field(default_factory=dict)
    lagging: set[bytes] = field(default_factory=set)  # behind for the whole grace period

    @property
    def own_height(self) -> int | None:
        heights = [self.member_heights[m] for m in self.own if m in self.member_heights]
        return max(heights) if heights else None

    def members_behind(self, interval: int) -> list[bytes]:
        own_height = self.own_height
        if own_height is None or self.first_own_height is None or interval <= 0:
            return []
        limit = LAGGING_INTERVALS * interval
        return [
            member
            for member in self.members
            if member not in self.own
            and own_height - self.member_heights.get(member, self.first_own_height) >= limit
        ]

    def status(self, interval: int) -> str:
        kinds = {alarm.kind for alarm in self.alarms}
        if "equivocation" in kinds:
            return "equivocation"
        agreed = self.agreed_height if self.agreed_height is not None else -1
        if any(a.kind == "mismatch" and a.height >= agreed for a in self.alarms):
            return "mismatch"
        if self.lagging:
            return "lagging"
        return "agreed" if self.agreed_height is not None else "pending"


class Auditor:
    """Every group's audit on this member; see the module's docstring."""

    def __init__(self, interval: int) -> None:
        self.interval = interval
        self.groups: dict[bytes, GroupAudit] = {}
        self._raised: set[tuple[str, bytes, int, bytes]] = set()
        self._orphans: list[Alarm] = []

    def group(self, group_id: bytes, members: Iterable[bytes], own: Iterable[bytes]) -> GroupAudit:
        audit = self.groups.get(group_id)
        if audit is None:
            audit = GroupAudit(group_id, tuple(sorted(set(members))), frozenset(own))
            self.groups[group_id] = audit
            self._adopt_orphans(audit)
        return audit

    def restore(self, alarm: Alarm) -> None:
        """An alarm raised before a restart: listed again, never raised again."""
        if alarm.key in self._raised:
            return
        self._raised.add(alarm.key)
        audit = self.groups.get(alarm.group_id)
        if audit is not None:
            audit.alarms.append(alarm)
        else:
            self._orphans.append(alarm)  # its group is listed once a commitment names it

    def add(
        self,
        commitment: GroupCommitment,
        members: Iterable[bytes],
        own: Iterable[bytes],
    ) -> list[Alarm]:
        """Take one commitment (its signature already checked); the new alarms."""
        claim = commitment.claim
        audit = self.group(claim.group_id, members, own)
        if claim.member not in audit.members:
            return []
        height = claim.block_number
        if audit.agreed_height is not None and height < audit.agreed_height - KEPT_BELOW_AGREED:
            return []
        by_member = audit.heights.setdefault(height, {})
        roots = by_member.setdefault(claim.member, {})
        if claim.root in roots:
            return []  # seen before (a repeated push, or a restart's re-read)
        roots[claim.root] = commitment
        if claim.member in audit.own and (
            audit.first_own_height is None or height < audit.first_own_height
        ):
            audit.first_own_height = height
        if height > audit.member_heights.get(claim.member, -1):
            audit.member_heights[claim.member] = height
        alarms: list[Alarm] = []
        if len(roots) > 1:
            alarms += self._raise(
                audit,
                Alarm("equivocation", audit.group_id, height, claim.member, tuple(roots.values())),
            )
        alarms += self._compare(audit, height)
        self._prune(audit)
        return alarms

    def check_lagging(self, now: float) -> list[Alarm]:
        """Lagging alarms at time ``now`` (seconds, any monotonic clock): a member behind
        for ``LAGGING_GRACE_SECONDS`` is lagging until it catches up."""
        alarms: list[Alarm] = []
        for audit in self.groups.values():
            behind = set(audit.members_behind(self.interval))
            for member in list(audit.behind_since):
                if member not in behind:
                    del audit.behind_since[member]
            audit.lagging &= behind
            for member in sorted(behind):
                since = audit.behind_since.setdefault(member, now)
                if now - since < LAGGING_GRACE_SECONDS:
                    continue
                audit.lagging.add(member)
                last = audit.member_heights.get(member, -1)
                evidence = self._latest_of(audit, member)
                alarms += self._raise(
                    audit, Alarm("lagging", audit.group_id, max(last, 0), member, evidence)
                )
        return alarms

    # --- inside -----------------------------------------------------------------------

    def _adopt_orphans(self, audit: GroupAudit) -> None:
        if self._orphans:
            audit.alarms.extend(a for a in self._orphans if a.group_id == audit.group_id)
            self._orphans = [a for a in self._orphans if a.group_id != audit.group_id]

    def _compare(self, audit: GroupAudit, height: int) -> list[Alarm]:
        by_member = audit.heights[height]
        single = {m: next(iter(roots)) for m, roots in by_member.items() if len(roots) == 1}
        if not single:
            return []
        own_roots = [single[m] for m in audit.own if m in single]
        reference = own_roots[0] if own_roots else None
        alarms: list[Alarm] = []
        if reference is not None:
            differing = [m for m, root in single.items() if root != reference]
            for member in differing:
                evidence = tuple(c for roots in by_member.values() for c in roots.values())
                alarms += self._raise(
                    audit, Alarm("mismatch", audit.group_id, height, member, evidence)
                )
        elif len(set(single.values())) > 1:
            evidence = tuple(c for roots in by_member.values() for c in roots.values())
            first_root = next(iter(single.values()))
            for member, root in single.items():
                if root != first_root:
                    alarms += self._raise(
                        audit, Alarm("mismatch", audit.group_id, height, member, evidence)
                    )
        complete = all(m in single for m in audit.members)
        if complete and len(set(single.values())) == 1:
            if audit.agreed_height is None or height > audit.agreed_height:
                audit.agreed_height = height
        return alarms

    def _raise(self, audit: GroupAudit, alarm: Alarm) -> list[Alarm]:
        if alarm.key in self._raised:
            return []
        self._raised.add(alarm.key)
        audit.alarms.append(alarm)
        return [alarm]

    @staticmethod
    def _latest_of(audit: GroupAudit, member: bytes) -> tuple[GroupCommitment, ...]:
        last = audit.member_heights.get(member)
        if last is None or last not in audit.heights:
            return ()
        return tuple(audit.heights[last].get(member, {}).values())

    @staticmethod
    def _prune(audit: GroupAudit) -> None:
        floor = (audit.agreed_height or 0) - KEPT_BELOW_AGREED
        keep_last = {h for h in audit.member_heights.values()}
        for height in [h for h in audit.heights if h < floor and h not in keep_last]:
            del audit.heights[height]
        while len(audit.heights) > MAX_OPEN_HEIGHTS:
            oldest = min(h for h in audit.heights if h not in keep_last)
            del audit.heights[oldest]
