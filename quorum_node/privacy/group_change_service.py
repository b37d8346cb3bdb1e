"""The group-change use cases: propose, vote, cancel and read the status
(docs/group-changes.md). Proposals, votes and cancellations are private transactions to
``GROUP_CHANGE_ADDRESS`` sent from the caller's account; what they do is decided on every
party by the rules in ``privacy.group_change`` when the block that orders them is
processed (``privacy.group_changes``). What follows an activation, the hand-over, is
``privacy.handover_service``'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_typing import Address, Hash32

from quorum_node.node import Node
from quorum_node.privacy import group_change
from quorum_node.privacy.group_change import (
    ACTIVE,
    VOTING,
    Cancel,
    GroupChange,
    Proposal,
    Scope,
    Vote,
)
from quorum_node.privacy.handover_service import HandoverService
from quorum_node.privacy.params import PrivacyError
from quorum_node.privacy.payloads import PayloadResolver
from quorum_node.privacy.service import PrivacyService
from quorum_node.privacy.store import PrivateStore


class GroupChangeService:
    def __init__(
        self,
        node: Node,
        privacy: PrivacyService,
        store: PrivateStore,
        resolver: PayloadResolver,
        handovers: HandoverService,
    ) -> None:
        self._node = node
        self._privacy = privacy
        self._store = store
        self._resolver = resolver
        self._handovers = handovers

    # --- proposing and voting ---------------------------------------------------------

    async def propose(
        self,
        sender: Address | None,
        group_id: bytes | None,
        contract: bytes | None,
        add: Sequence[str],
        remove: Sequence[str],
        scope: Scope,
        private_from: str | None,
    ) -> Hash32:
        """Send the proposal to every party involved; its transaction hash is the change id."""
        if group_id is None:
            if contract is None:
                raise PrivacyError("name the group (groupId) or one of its contracts")
            group_id = self._privacy.group_of(contract)
            if group_id is None:
                raise PrivacyError(
                    f"0x{contract.hex()} is not a private contract this node is party to"
                )
        members = await self._node.executor.run(self._store.group_members, group_id)
        if not members:
            raise PrivacyError(f"this node is not a member of party group 0x{group_id.hex()}")
        await self._check_changeable(group_id)
        me = private_from or await self._member_key(members)
        if me not in members:
            raise PrivacyError(f"privateFrom {me} is not a member of group 0x{group_id.hex()}")
        added = sorted(set(add) - set(members))
        if set(add) & set(members):
            raise PrivacyError("already members: " + ", ".join(sorted(set(add) & set(members))))
        if not set(remove) <= set(members):
            raise PrivacyError(
                "not members of the group: " + ", ".join(sorted(set(remove) - set(members)))
            )
        if not added and not remove:
            raise PrivacyError("the change adds and removes no one")
        if not (set(members) | set(added)) - set(remove):
            raise PrivacyError("the change would leave the group without members")
        message = Proposal(group_id, tuple(added), tuple(sorted(set(remove))), scope, contract)
        parties = sorted(set(members) | set(added))
        return await self._privacy.send_group_change_message(
            sender, me, parties, group_change.encode(message)
        )

    async def _check_changeable(self, group_id: bytes) -> None:
        def check() -> None:
            frozen = self._store.frozen_by(group_id)
            if frozen is not None:
                raise PrivacyError(
                    f"party group 0x{group_id.hex()} was already changed by 0x{frozen.hex()}"
                )
            for change_id in self._store.change_ids():
                change = self._store.change(change_id)
                if change is not None and change.group_id == group_id and change.status == VOTING:
                    raise PrivacyError(
                        f"party group 0x{group_id.hex()} has a change open already: "
                        f"0x{change_id.hex()} (cancel it first)"
                    )

        await self._node.executor.run(check)

    async def vote(self, sender: Address | None, change_id: bytes, approve: bool) -> Hash32:
        change = await self._open_change(change_id)
        me = await self._member_key(list(change.parties))
        if approve and me in change.approvals:
            raise PrivacyError(f"{me} already approved change 0x{change_id.hex()}")
        message = group_change.encode(Vote(change_id, approve))
        return await self._privacy.send_group_change_message(
            sender, me, list(change.parties), message
        )

    async def cancel(self, sender: Address | None, change_id: bytes) -> Hash32:
        change = await self._open_change(change_id)
        me = await self._member_key(list(change.members))
        message = group_change.encode(Cancel(change_id))
        return await self._privacy.send_group_change_message(
            sender, me, list(change.parties), message
        )

    async def _open_change(self, change_id: bytes) -> GroupChange:
        change = await self._node.executor.run(self._store.change, change_id)
        if change is None:
            raise PrivacyError(
                f"change 0x{change_id.hex()} is not known to this node: only its parties "
                "hold it (wait for the proposal's block, or ask a party's node)"
            )
        if change.status != VOTING:
            raise PrivacyError(f"change 0x{change_id.hex()} is {change.status}, not open")
        return change

    async def _member_key(self, keys: list[str]) -> str:
        own = await self._resolver.own_keys()
        for key in sorted(keys):
            if key in own:
                return key
        raise PrivacyError("this node's manager holds no key of the parties")

    # --- reading ----------------------------------------------------------------------

    async def status(self, change_id: bytes) -> dict[str, Any] | None:
        change = await self._node.executor.run(self._store.change, change_id)
        if change is None:
            return None
        own = await self._resolver.own_keys()
        pending = await self._node.executor.run(self._store.pending_groups)
        sent = await self._node.executor.run(self._store.handover_sent, change_id)
        received = await self._node.executor.run(self._store.handovers, change_id)
        body = change.to_json()
        role = (
            "added"
            if own & set(change.add)
            else "removed"
            if own & set(change.remove)
            else "member"
        )
        body["role"] = role
        handover: dict[str, Any] = {}
        if change.status == ACTIVE and role == "added":
            handover["receivedFrom"] = sorted({sender for sender, _ in received})
            handover["state"] = (
                "waiting" if pending.get(change.new_group_id) == change_id else "accepted"
            )
            handover["evidence"] = self._handovers.evidence(change_id)
            history = self._handovers.history_path(change_id)
            handover["history"] = None if history is None else str(history)
        elif change.status == ACTIVE and change.add:
            handover["sent"] = sent
            error = self._handovers.send_error(change_id)
            if error is not None:
                handover["error"] = error
        body["handover"] = handover
        return body

    async def changes(self) -> list[dict[str, Any]]:
        ids = await self._node.executor.run(self._store.change_ids)
        found = [await self.status(change_id) for change_id in ids]
        return [entry for entry in found if entry is not None]
