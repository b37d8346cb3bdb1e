"""What follows a group change's activation, off the chain thread
(docs/group-changes.md, "Proof for the newcomer").

* An old member hands G's state at H over to the added parties (``_hand_over``): it
  signs its commitment of G's root at H with its manager, collects the state's accounts
  (and, for scope ``full``, G's history as a disclosure bundle sealed for each added
  party), and sends them in a control message to the added parties only.
* An added party accepts a state (``_try_accept``) only once every old member's signed
  commitment of G at H is in hand, all name one root, and a handed-over state rebuilds to
  exactly that root. Anything else is refused with its evidence logged, and the party
  takes no part in G′ until a correct state arrives. On acceptance, in one atomic write,
  it installs the state and the contracts' metadata, then runs G′'s transactions it
  skipped since H (``PrivacyProcessor.catch_up``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth.abc import BlockAPI
from eth_typing import Address, Hash32

from quorum_node.chain.records import TransactionRecord
from quorum_node.chain.service import CommittedBlock
from quorum_node.chain.transactions import is_private
from quorum_node.node import Node
from quorum_node.privacy import group_change
from quorum_node.privacy.disclosure import DisclosureService
from quorum_node.privacy.group_change import (
    ACTIVE,
    ChangeMessageError,
    GroupChange,
    Handover,
)
from quorum_node.privacy.handover import (
    HandoverError,
    RebuiltState,
    collect_accounts,
    contracts_json,
    differing_accounts,
    rebuild,
)
from quorum_node.privacy.params import PrivacyError
from quorum_node.privacy.payloads import PayloadResolver
from quorum_node.privacy.processor import PrivacyProcessor
from quorum_node.privacy.service import PrivacyService
from quorum_node.privacy.store import PrivateContract, PrivateStore
from quorum_shared import commitments
from quorum_shared.commitments import CommitmentFormatError, GroupCommitment
from quorum_shared.secret_files import secret_directory, write_secret
from tx_manager.client import ClientError, Q2TClient
from tx_manager.commitment_messages import CommitmentRequest

logger = logging.getLogger(__name__)

POLL_SECONDS = 1.0


@dataclass
class Evidence:
    """Why an added party refused what it was handed (kept for the status, and logged)."""

    reason: str
    commitments: list[dict[str, Any]] = field(default_factory=list)
    offered_root: str | None = None
    agreed_root: str | None = None
    differing_accounts: list[dict[str, Any]] = field(default_factory=list)
    sender: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "sender": self.sender,
            "commitments": self.commitments,
            "offeredRoot": self.offered_root,
            "agreedRoot": self.agreed_root,
            "differingAccounts": self.differing_accounts,
        }


class HandoverService:
    def __init__(
        self,
        node: Node,
        privacy: PrivacyService,
        store: PrivateStore,
        manager: Q2TClient,
        processor: PrivacyProcessor,
        resolver: PayloadResolver,
        disclosure: DisclosureService | None,
        history_dir: Path,
        *,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self._node = node
        self._privacy = privacy
        self._store = store
        self._manager = manager
        self._processor = processor
        self._resolver = resolver
        self._disclosure = disclosure
        self._history_dir = history_dir
        self._poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._evidence: dict[bytes, list[Evidence]] = {}
        self._handover_errors: dict[bytes, str] = {}
        self._judged: dict[bytes, int] = {}  # change → hand-overs looked at (and refused)

    # --- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        self._node.block_listeners.append(self._on_block)
        self._task = asyncio.create_task(self._run_forever(), name="group-changes")

    async def stop(self) -> None:
        if self._on_block in self._node.block_listeners:
            self._node.block_listeners.remove(self._on_block)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _on_block(self, committed: CommittedBlock) -> None:
        self._wake.set()

    async def _run_forever(self) -> None:
        while True:
            try:
                await self.step()
            except Exception:
                logger.exception("group changes: a step failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_seconds)
            self._wake.clear()

    async def step(self) -> None:
        """Hand over what this node owes, and try to accept what it waits for."""
        own = await self._resolver.own_keys()
        changes = await self._node.executor.run(self._open_work)
        for change in changes:
            if change.status == ACTIVE and own & set(change.members) and change.add:
                await self._hand_over(change, own)
        for new_group, change_id in (
            await self._node.executor.run(self._store.pending_groups)
        ).items():
            pending_change = await self._node.executor.run(self._store.change, change_id)
            if pending_change is not None:
                await self._try_accept(pending_change, new_group)

    def _open_work(self) -> list[GroupChange]:
        found = []
        for change_id in self._store.change_ids():
            change = self._store.change(change_id)
            if (
                change is not None
                and change.status == ACTIVE
                and not self._store.handover_sent(change_id)
            ):
                found.append(change)
        return found

    # --- what the status shows ---------------------------------------------------------

    def evidence(self, change_id: bytes) -> list[dict[str, Any]]:
        """Why this node refused what it was handed for ``change_id`` (since it started)."""
        return [e.to_json() for e in self._evidence.get(change_id, [])]

    def send_error(self, change_id: bytes) -> str | None:
        """Why this node's hand-over for ``change_id`` is not sent yet, if it tried."""
        return self._handover_errors.get(change_id)

    def history_path(self, change_id: bytes) -> Path | None:
        """Where an accepted change's history (scope ``full``) was kept, if it was."""
        path = self._history_path(change_id)
        return path if path.exists() else None

    # --- handing over (old members) -----------------------------------------------------

    async def _hand_over(self, change: GroupChange, own: frozenset[str]) -> None:
        member = next(key for key in change.members if key in own)
        height = change.final_block
        assert height is not None  # noqa: S101 - set when active
        node = self._node

        def read() -> tuple[bytes, bytes, list[dict[str, Any]], list[dict[str, Any]]]:
            header = node.chain.header_by_number(height)
            if header is None:
                raise PrivacyError(f"block {height} is not in this node's chain")
            root = self._store.roots_after(header.hash).get(change.group_id)
            if root is None:
                raise PrivacyError(f"no state of group 0x{change.group_id.hex()} at {height}")
            contracts = [
                (address, contract)
                for address in self._store.group_contracts(change.group_id)
                if (contract := self._store.contract(address)) is not None
            ]
            accounts = collect_accounts(node.chain.db, root)
            return bytes(header.hash), bytes(root), accounts, contracts_json(contracts)

        try:
            block_hash, root, accounts, contracts = await node.executor.run(read)
            signed = await self._manager.commit(
                [
                    CommitmentRequest(
                        chain_id=node.chain_id,
                        group_id=change.group_id,
                        block_number=height,
                        block_hash=block_hash,
                        root=root,
                        members=change.members,
                    )
                ]
            )
            mine = next(c for c in signed if base64.b64encode(c.claim.member).decode() == member)
            history = None
            if change.scope == "full":
                if self._disclosure is None:
                    raise PrivacyError("scope full needs this node's disclosure service")
                history = {
                    key: await self._disclosure.disclose_group(change.group_id, height, key)
                    for key in change.add
                }
            accounts_held = node.accounts.addresses()
            if not accounts_held:
                raise PrivacyError("this node holds no unlocked account to send the hand-over")
            message = Handover(
                change.change_id, mine.to_json(), tuple(accounts), tuple(contracts), history
            )
            await self._privacy.send_group_change_message(
                accounts_held[0], member, [member, *change.add], group_change.encode(message)
            )
        except (PrivacyError, ClientError, StopIteration) as exc:
            self._handover_errors[change.change_id] = str(exc) or type(exc).__name__
            logger.info("hand-over of change 0x%s not sent yet: %s", change.change_id.hex(), exc)
            return
        self._handover_errors.pop(change.change_id, None)
        await node.executor.run(self._store.set_handover_sent, change.change_id)
        logger.info(
            "handed group 0x%s's state at block %d over to %s",
            change.group_id.hex(),
            height,
            ", ".join(change.add),
        )

    # --- accepting (added parties) ------------------------------------------------------

    async def _try_accept(self, change: GroupChange, new_group: bytes) -> None:
        node = self._node
        height = change.final_block
        assert height is not None  # noqa: S101 - set when active
        received = await node.executor.run(self._store.handovers, change.change_id)
        if not received or self._judged.get(change.change_id) == len(received):
            return  # nothing new since the last look
        header = await node.executor.run(node.chain.header_by_number, height)
        if header is None:
            return
        signed: dict[str, GroupCommitment] = {}
        offers: list[tuple[str, Handover]] = []
        for sender, raw in received:
            try:
                message = group_change.decode(raw)
                if not isinstance(message, Handover):
                    continue
                commitment = GroupCommitment.from_json(message.commitment)
            except (ChangeMessageError, CommitmentFormatError) as exc:
                self._refuse(change, Evidence(f"malformed hand-over: {exc}", sender=sender))
                continue
            claim = commitment.claim
            expected = (node.chain_id, change.group_id, height, bytes(header.hash))
            actual = (claim.chain_id, claim.group_id, claim.block_number, claim.block_hash)
            if (
                actual != expected
                or base64.b64encode(claim.member).decode() != sender
                or not commitments.verify(commitment)
            ):
                self._refuse(
                    change,
                    Evidence(
                        "a hand-over's commitment is not its sender's signed root of the "
                        "group at the activation block",
                        [commitment.to_json()],
                        sender=sender,
                    ),
                )
                continue
            signed.setdefault(sender, commitment)
            offers.append((sender, message))
        self._judged[change.change_id] = len(received)
        missing = [member for member in change.members if member not in signed]
        if missing:
            return  # not every old member's signed root yet
        evidence = [signed[member].to_json() for member in change.members]
        roots = {signed[member].claim.root for member in change.members}
        if len(roots) != 1:
            self._refuse(change, Evidence("the old members signed different roots", evidence))
            return
        agreed = next(iter(roots))
        accepted: tuple[Handover, RebuiltState] | None = None
        bad: list[tuple[str, RebuiltState | None, str]] = []
        for sender, offer in offers:
            try:
                state = await node.executor.run(rebuild, list(offer.accounts))
            except HandoverError as exc:
                bad.append((sender, None, str(exc)))
                continue
            if state.root != agreed:
                bad.append((sender, state, "its accounts do not hash to the agreed root"))
            elif accepted is None:
                accepted = (offer, state)
        addresses = _contract_addresses(offer for _, offer in offers)
        for sender, offered, reason in bad:
            differing = (
                differing_accounts(offered.accounts, accepted[1].accounts, addresses)
                if offered is not None and accepted is not None
                else []
            )
            self._refuse(
                change,
                Evidence(
                    f"the state handed over by {sender} was refused: {reason}",
                    evidence,
                    offered_root=None if offered is None else "0x" + offered.root.hex(),
                    agreed_root="0x" + agreed.hex(),
                    differing_accounts=differing,
                    sender=sender,
                ),
            )
        if accepted is None:
            return
        try:
            await self._install(change, new_group, accepted[0], accepted[1])
        except BaseException:
            self._judged.pop(change.change_id, None)  # look again at the next step
            raise

    def _refuse(self, change: GroupChange, evidence: Evidence) -> None:
        known = self._evidence.setdefault(change.change_id, [])
        if any(e.reason == evidence.reason and e.sender == evidence.sender for e in known):
            return  # logged once
        known.append(evidence)
        logger.error(
            "group change 0x%s: %s; evidence: %s",
            change.change_id.hex(),
            evidence.reason,
            json.dumps(evidence.to_json()),
        )

    async def _install(
        self, change: GroupChange, new_group: bytes, offer: Handover, state: RebuiltState
    ) -> None:
        """Install the agreed state and run what this node skipped since H, atomically."""
        node = self._node
        height = change.final_block
        assert height is not None  # noqa: S101 - set when active
        while True:
            blocks, head = await node.executor.run(self._blocks_after, height)
            hashes = [
                bytes(tx.data) for block, _ in blocks for tx in block.transactions if is_private(tx)
            ]
            payloads = await self._resolver.resolve(hashes, patient=True) if hashes else {}

            def apply(
                blocks: list[tuple[BlockAPI, list[TransactionRecord]]] = blocks,
                head: int = head,
                payloads: Any = payloads,
            ) -> bool:
                if node.chain.head.block_number != head:
                    return False  # a block came meanwhile: fetch its payloads too
                with node.chain.one_write():
                    state.install(node.chain.db)
                    for entry in offer.contracts:
                        self._install_contract(entry, new_group)
                    self._processor.catch_up(
                        node.chain.chain, new_group, state.root, blocks, payloads
                    )
                    pending = self._store.pending_groups()
                    pending.pop(new_group, None)
                    self._store.set_pending_groups(pending)
                return True

            if await node.executor.run(apply):
                break
        if offer.history:
            own = await self._resolver.own_keys()
            for key, bundle in offer.history.items():
                if key in own:
                    path = self._history_path(change.change_id)
                    secret_directory(path.parent)  # private history, for this party
                    write_secret(path, json.dumps(bundle, indent=1))
        logger.info(
            "group change 0x%s: accepted group 0x%s's state at block %d (root 0x%s, signed by "
            "every old member); this node now takes part in group 0x%s",
            change.change_id.hex(),
            change.group_id.hex(),
            height,
            state.root.hex(),
            new_group.hex(),
        )

    def _install_contract(self, entry: Any, new_group: bytes) -> None:
        try:
            address = Address(bytes.fromhex(entry["address"][2:]))
            contract = PrivateContract(
                new_group,
                Hash32(bytes.fromhex(entry["creationTransaction"][2:])),
                int(entry["privacyFlag"]),
                tuple(sorted(entry.get("mandatoryFor", []))),
            )
        except (KeyError, TypeError, ValueError) as exc:
            logger.warning("a handed-over contract entry is malformed (%s): %r", exc, entry)
            return
        self._store.set_contract(address, contract)
        self._store.add_group_contracts(new_group, [address])

    def _blocks_after(
        self, height: int
    ) -> tuple[list[tuple[BlockAPI, list[TransactionRecord]]], int]:
        chain = self._node.chain
        head = chain.head.block_number
        blocks = []
        for number in range(height + 1, head + 1):
            header = chain.header_by_number(number)
            assert header is not None  # noqa: S101 - below the head
            block = chain.block_of(header)
            blocks.append((block, chain.records_of(block)))
        return blocks, head

    def _history_path(self, change_id: bytes) -> Path:
        return self._history_dir / f"0x{change_id.hex()}.history.json"


def _contract_addresses(offers: Iterable[Handover]) -> list[bytes]:
    """The contract addresses the hand-overs name (to name differing accounts by);
    an entry that is not a 0x address is left out, not fatal: it is evidence too."""
    found = []
    for offer in offers:
        for entry in offer.contracts:
            text = entry.get("address") if isinstance(entry, dict) else None
            try:
                raw = bytes.fromhex(text[2:]) if isinstance(text, str) else b""
            except ValueError:
                continue
            if len(raw) == 20:
                found.append(raw)
    return found
