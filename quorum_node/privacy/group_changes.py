"""Group changes inside a block's private half (chain thread, in the block's one write).

``PrivacyProcessor`` hands each control message (a private transaction to
``GROUP_CHANGE_ADDRESS``) and each transaction of a frozen group to ``apply``, and calls
``activate`` once the block's transactions ran. The rules themselves are pure, in
``privacy.group_change``; this module keeps their records in the ``PrivateStore`` and
carries out an activation for this node's role in it:

* an old member freezes G (its transactions after H are refused, status 0) and, if it
  stays, moves G's root, contracts and index to G′ from block H+1;
* a removed member keeps G as it was at H and holds nothing of G′;
* an added party waits for G's state at H (``HandoverService`` checks and installs
  it, then runs G′'s transactions it skipped meanwhile).
"""

from __future__ import annotations

import logging
from dataclasses import replace

from eth.abc import BlockAPI
from eth_typing import Hash32

from quorum_node.chain.records import TransactionRecord
from quorum_node.privacy import group_change
from quorum_node.privacy.group_change import (
    ACTIVE,
    REFUSED,
    ChangeMessageError,
    Context,
    GroupChange,
    Handover,
    Proposal,
    Refused,
    Vote,
)
from quorum_node.privacy.payloads import PrivatePayload
from quorum_node.privacy.store import PrivateStore

logger = logging.getLogger(__name__)


class GroupChanges:
    """The group changes of one block, as this node (holding ``own_keys``) sees them."""

    def __init__(self, store: PrivateStore, own_keys: frozenset[str]) -> None:
        self._store = store
        self._own_keys = own_keys
        self._activated: list[GroupChange] = []

    def frozen(self, group_id: bytes, block: BlockAPI) -> bool:
        """Whether ``group_id`` was moved on by a change that activated before ``block``."""
        change_id = self._store.frozen_by(group_id)
        if change_id is None:
            return False
        change = self._store.change(change_id)
        return change is not None and (change.final_block or 0) < block.number

    def apply(
        self, found: PrivatePayload, record: TransactionRecord, block: BlockAPI, to: bytes
    ) -> int:
        """The private status of a control message or a frozen group's transaction."""
        context = Context(record.transaction_hash, block.number, found.sender_key, found.parties)
        try:
            if to != group_change.GROUP_CHANGE_ADDRESS:
                raise Refused(self._frozen_reason(found.group_id))
            self._apply(group_change.decode(found.payload), context, found.payload)
        except (Refused, ChangeMessageError) as exc:
            logger.warning("private transaction %s refused: %s", record.transaction_hash.hex(), exc)
            return 0
        return 1

    def _frozen_reason(self, group_id: bytes) -> str:
        change = self._store.change(self._store.frozen_by(group_id) or b"")
        if change is None:
            return f"party group 0x{group_id.hex()} is frozen"
        return (
            f"party group 0x{group_id.hex()} became 0x{change.new_group_id.hex()} at block "
            f"{change.final_block}"
        )

    def _apply(self, message: group_change.ControlMessage, context: Context, raw: bytes) -> None:
        if isinstance(message, Proposal):
            if self._store.change(context.transaction_hash) is None:
                self._store.set_change(group_change.propose(message, context))
            return
        change = self._store.change(message.change_id)
        if change is None:
            raise Refused(f"no change 0x{message.change_id.hex()} is known here")
        if isinstance(message, Handover):
            self._handover(change, context, raw)
            return
        if isinstance(message, Vote):
            changed = group_change.vote(change, message, context)
        else:
            changed = group_change.cancel(change, context)
        self._store.set_change(changed)
        if changed.status == ACTIVE:
            self._activated.append(changed)

    def _handover(self, change: GroupChange, context: Context, raw: bytes) -> None:
        if change.status != ACTIVE:
            raise Refused(f"change 0x{change.change_id.hex()} is {change.status}, not active")
        if context.sender not in change.members:
            raise Refused("only a member of the old group can hand its state over")
        if self._own_keys & set(change.add):
            self._store.add_handover(change.change_id, context.sender, raw)

    def activate(self, block: BlockAPI, roots: dict[bytes, Hash32]) -> None:
        """Carry out the changes that activated in this block (H = this block)."""
        moves: list[tuple[bytes, bytes | None]] = []
        for change in self._activated:
            old, new = change.group_id, change.new_group_id
            earlier = self._store.frozen_by(old)
            if earlier is not None:
                self._store.set_change(
                    replace(
                        change,
                        status=REFUSED,
                        reason=f"group already changed by 0x{earlier.hex()}",
                    )
                )
                continue
            mine = self._own_keys
            old_member = bool(mine & set(change.members))
            if old_member:
                self._store.set_frozen(old, change.change_id)
                if mine & set(change.new_members) and old in roots:
                    moves.append((old, new))
                    self._move_contracts(old, new)
                    self._store.set_group_members(new, list(change.new_members))
                    self._store.set_predecessor(new, old, block.number)
                else:
                    moves.append((old, None))
            elif mine & set(change.add):
                pending = self._store.pending_groups()
                pending[new] = change.change_id
                self._store.set_pending_groups(pending)
                self._store.set_group_members(new, list(change.new_members))
                self._store.set_predecessor(new, old, block.number)
            logger.info(
                "group change 0x%s active at block %d: party group 0x%s is now 0x%s",
                change.change_id.hex(),
                block.number,
                old.hex(),
                new.hex(),
            )
        self._store.set_successions(block.hash, moves)

    def _move_contracts(self, old: bytes, new: bytes) -> None:
        addresses = self._store.group_contracts(old)
        for address in addresses:
            contract = self._store.contract(address)
            if contract is not None:
                self._store.set_contract(address, replace(contract, group_id=new))
        self._store.add_group_contracts(new, addresses)
