"""``AuditService`` on an in-memory node with a fake manager that signs for real: which
heights it signs (every interval, and the idle head), that a height waits for a manager
that does not answer instead of being lost, and that an alarm is stored, pushed to
listeners and listed again after a restart."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import pytest

from quorum_node.privacy.audit import Alarm
from quorum_node.privacy.audit_service import AuditService
from quorum_node.privacy.audit_store import AlarmStore
from quorum_shared.commitments import CommitmentClaim, GroupCommitment, identity_seed, sign
from tests.support.fake_manager import KEY_A, KEY_B, group_of
from tests.support.waiting import wait_until_async
from tests.unit.conftest import NodeFactory
from tests.unit.test_privacy_service import PrivateSetup, deploy, private_setup
from tx_manager.client import (
    CommitmentPage,
    CommitmentRequest,
    ManagerUnavailable,
    StoredCommitment,
)

pytestmark = pytest.mark.timeout(30)

GROUP = group_of([KEY_A, KEY_B])


class SigningManager:
    """The commitment half of a manager: signs with identities derived from fake private
    keys, keeps own and "received" commitments in one sequence."""

    def __init__(self) -> None:
        self.requests: list[CommitmentRequest] = []
        self.stored: list[StoredCommitment] = []
        self.down = False
        self.pages_read = 0

    async def keys(self) -> list[str]:
        return [KEY_A]

    async def commit(self, items: list[CommitmentRequest]) -> list[GroupCommitment]:
        if self.down:
            raise ManagerUnavailable("the manager is down")
        self.requests += items
        signed = []
        for item in items:
            commitment = signed_by(KEY_A, item.block_number, item.root, item.block_hash)
            self.keep(commitment, own=True, members=item.members)
            signed.append(commitment)
        return signed

    def keep(self, commitment: GroupCommitment, *, own: bool, members: tuple[str, ...]) -> None:
        self.stored.append(StoredCommitment(len(self.stored) + 1, own, members, commitment))

    async def commitments(
        self, after: int = 0, limit: int = 1000, wait: float = 0.0
    ) -> CommitmentPage:
        # answers at once: the reader must not spin on a manager that holds no page
        self.pages_read += 1
        items = tuple(s for s in self.stored if s.seq > after)[:limit]
        return CommitmentPage(items, items[-1].seq if items else after)


def signed_by(key: str, height: int, root: bytes, block_hash: bytes) -> GroupCommitment:
    member = base64.b64decode(key)
    claim = CommitmentClaim(1337, GROUP, height, block_hash, root, member)
    return sign(claim, identity_seed(member + b"private"))


async def started(
    setup: PrivateSetup, manager: SigningManager, path: Path, interval: int, idle: float = 60
) -> AuditService:
    service = AuditService(
        setup.node,
        setup.store,
        manager,
        AlarmStore(path),
        interval,
        idle_seconds=idle,
        poll_seconds=0.02,
    )
    await service.start()
    return service


async def blocks_with_private_state(setup: PrivateSetup, count: int) -> None:
    for value in range(count):
        await setup.service.send_transaction(deploy(value))
        assert await setup.node.produce_block(allow_empty=False) is not None


async def test_each_interval_height_is_signed_with_the_groups_root_after_that_block(
    make_node: NodeFactory, tmp_path: Path
) -> None:
    setup = private_setup(make_node)
    manager = SigningManager()
    service = await started(setup, manager, tmp_path / "audit.sqlite", interval=2)
    try:
        await blocks_with_private_state(setup, 4)
        await wait_until_async(lambda: len(manager.requests) >= 2, 5, "heights 2 and 4")
        assert [r.block_number for r in manager.requests] == [2, 4]
        for request in manager.requests:
            header = setup.node.chain.header_by_number(request.block_number)
            assert request.block_hash == header.hash
            assert request.root == setup.store.roots_after(header.hash)[GROUP]
            assert request.group_id == GROUP
            assert sorted(request.members) == sorted([KEY_A, KEY_B])
        status = await service.status()
        assert [entry["groupId"] for entry in status] == ["0x" + GROUP.hex()]
        assert status[0]["status"] == "pending"  # B has not signed anything yet
        assert status[0]["memberHeights"] == {KEY_A: 4}
    finally:
        await service.stop()


async def test_an_idle_head_is_signed_once(make_node: NodeFactory, tmp_path: Path) -> None:
    setup = private_setup(make_node)
    manager = SigningManager()
    service = await started(setup, manager, tmp_path / "audit.sqlite", interval=10, idle=0.05)
    try:
        await blocks_with_private_state(setup, 3)
        await wait_until_async(
            lambda: manager.requests and manager.requests[-1].block_number == 3, 5, "the idle head"
        )
        await asyncio.sleep(0.2)
        # (a slow machine may also find the chain idle between two of the blocks)
        heights = [r.block_number for r in manager.requests]
        assert heights[-1] == 3 and heights == sorted(set(heights))
    finally:
        await service.stop()


async def test_a_height_waits_for_a_manager_that_does_not_answer(
    make_node: NodeFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("quorum_node.privacy.audit_service.RETRY_SECONDS", 0.02)
    setup = private_setup(make_node)
    manager = SigningManager()
    manager.down = True
    service = await started(setup, manager, tmp_path / "audit.sqlite", interval=1)
    try:
        await blocks_with_private_state(setup, 2)
        await asyncio.sleep(0.1)
        assert manager.requests == []
        manager.down = False
        await wait_until_async(lambda: len(manager.requests) >= 2, 5, "both heights")
        assert [r.block_number for r in manager.requests] == [1, 2]
    finally:
        await service.stop()


async def test_a_mismatch_is_stored_pushed_and_listed_again_after_a_restart(
    make_node: NodeFactory, tmp_path: Path
) -> None:
    setup = private_setup(make_node)
    manager = SigningManager()
    path = tmp_path / "audit.sqlite"
    service = await started(setup, manager, path, interval=1)
    heard: list[Alarm] = []
    service.alarm_listeners.append(heard.append)
    try:
        await blocks_with_private_state(setup, 1)
        await wait_until_async(lambda: len(manager.requests) >= 1, 5, "height 1")
        own = manager.requests[0]
        other = signed_by(KEY_B, 1, b"\x99" * 32, own.block_hash)
        manager.keep(other, own=False, members=own.members)
        await wait_until_async(lambda: bool(heard), 5, "the mismatch alarm")
        assert heard[0].kind == "mismatch"
        assert heard[0].member == base64.b64decode(KEY_B)
        status = await service.status()
        assert status[0]["status"] == "mismatch"
    finally:
        await service.stop()

    again = await started(setup, SigningManager(), path, interval=1)
    try:
        status = await again.status()
        assert status[0]["status"] == "mismatch"
        assert status[0]["alarms"][0]["member"] == KEY_B
        assert status[0]["alarms"][0]["evidence"] == [c.to_json() for c in heard[0].evidence]
    finally:
        await again.stop()


async def test_the_reader_does_not_spin_on_a_manager_that_answers_empty_pages_at_once(
    make_node: NodeFactory, tmp_path: Path
) -> None:
    """A manager that does not hold empty pages (the fake answers at once) is asked
    again only once per poll period, not in a loop."""
    setup = private_setup(make_node)
    manager = SigningManager()
    service = await started(setup, manager, tmp_path / "audit.sqlite", interval=0)
    try:
        await asyncio.sleep(0.5)
        assert 5 <= manager.pages_read <= 30  # 0.5 s at one page per 0.02 s: about 25
    finally:
        await service.stop()
