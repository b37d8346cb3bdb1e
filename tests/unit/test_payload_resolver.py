"""``PayloadResolver`` and ``PrivateBlocks.for_block`` against a fake manager that answers
404, 500, times out, recovers or says it is recovering from its peers (503): only a 404
means "not a party", any other failure is retried when patient and never taken for an
answer, and answers are cached."""

from __future__ import annotations

import logging

import pytest

from quorum_node.errors import PrivateDataUnavailable
from quorum_node.privacy import payloads
from quorum_node.privacy.payloads import PayloadResolver, PrivatePayload
from quorum_node.privacy.processor import PrivacyProcessor, PrivateBlocks
from quorum_node.privacy.store import PrivateStore
from tests.support.fake_manager import KEY_A, KEY_B, FakeManager, group_of, receive_result
from tests.support.inproc import KEYS, MemoryOverlayDB, private_transaction, transfer
from tx_manager.client import (
    ClientError,
    ManagerRecovering,
    ManagerRequestFailed,
    ManagerUnavailable,
    ReceiveResult,
)

pytestmark = pytest.mark.timeout(10)

PARTY = b"\x01" * 64
STRANGER = b"\x02" * 64
PARTIES = [KEY_B, KEY_A]


def received(payload: bytes = b"\x60\x00") -> ReceiveResult:
    return receive_result(payload, PARTIES)


def server_error() -> ManagerRequestFailed:
    return ManagerRequestFailed(500, "database is locked")


def timeout() -> ManagerUnavailable:
    return ManagerUnavailable("GET /transaction: TimeoutError: ")


def recovering() -> ManagerRecovering:
    return ManagerRecovering(503, "not found yet: this manager is recovering from its peers")


def resolver_for(manager: FakeManager) -> PayloadResolver:
    return PayloadResolver(manager.as_client())


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(payloads, "RETRY_DELAYS_SECONDS", (0.001, 0.002, 0.003))
    monkeypatch.setattr(payloads, "RECOVERY_POLL_SECONDS", 0.001)


async def test_a_404_means_not_a_party_and_is_not_retried() -> None:
    manager = FakeManager(answers={STRANGER: [None]})

    found = await resolver_for(manager).resolve([STRANGER], patient=True)

    assert found == {STRANGER: None}
    assert manager.asked == [STRANGER]


async def test_a_party_gets_the_payload_and_its_group() -> None:
    manager = FakeManager(answers={PARTY: [received(b"\x60\x2a")]})

    found = await resolver_for(manager).resolve([PARTY], patient=False)

    assert found == {
        PARTY: PrivatePayload(
            payload=b"\x60\x2a",
            group_id=group_of(PARTIES),
            parties=(KEY_A, KEY_B),
            privacy_flag=0,
            sender_key=KEY_A,
        )
    }


@pytest.mark.parametrize(
    "failure",
    [server_error(), timeout(), ClientError("malformed receive response")],
    ids=["500", "timeout", "malformed"],
)
async def test_an_impatient_resolve_gives_up_after_one_attempt(failure: Exception) -> None:
    manager = FakeManager(answers={PARTY: [failure, received()]})

    with pytest.raises(PrivateDataUnavailable) as caught:
        await resolver_for(manager).resolve([PARTY], patient=False)

    assert manager.asked == [PARTY]
    message = str(caught.value)
    assert manager.base_url in message
    assert PARTY[:8].hex() in message
    assert str(failure) in message


async def test_a_patient_resolve_retries_until_the_manager_recovers() -> None:
    manager = FakeManager(answers={PARTY: [server_error(), timeout(), received(b"\x60\x07")]})

    found = await resolver_for(manager).resolve([PARTY], patient=True)

    assert manager.asked == [PARTY] * 3
    payload = found[PARTY]
    assert payload is not None and payload.payload == b"\x60\x07"


async def test_a_patient_resolve_gives_up_after_the_last_retry() -> None:
    manager = FakeManager(answers={PARTY: [timeout()]})

    with pytest.raises(PrivateDataUnavailable, match="did not answer"):
        await resolver_for(manager).resolve([PARTY], patient=True)

    assert manager.asked == [PARTY] * (1 + len(payloads.RETRY_DELAYS_SECONDS))


async def test_a_patient_resolve_waits_out_a_recovery_longer_than_its_retries(
    caplog: pytest.LogCaptureFixture,
) -> None:
    waits = 5 * (1 + len(payloads.RETRY_DELAYS_SECONDS))  # far more than the retries
    manager = FakeManager(answers={PARTY: [recovering()] * waits + [received(b"\x60\x09")]})
    caplog.set_level(logging.INFO, logger=payloads.__name__)

    found = await resolver_for(manager).resolve([PARTY], patient=True)

    payload = found[PARTY]
    assert payload is not None and payload.payload == b"\x60\x09"
    assert manager.asked == [PARTY] * (waits + 1)
    waiting = [r for r in caplog.records if "to finish its recovery" in r.getMessage()]
    assert [r.levelno for r in waiting] == [logging.INFO]  # once per wait, not per poll
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_recovering_manager_is_never_taken_for_not_a_party() -> None:
    manager = FakeManager(
        answers={PARTY: [recovering(), received()], STRANGER: [recovering(), None]}
    )
    resolver = resolver_for(manager)
    with pytest.raises(PrivateDataUnavailable, match="recovering"):
        await resolver.resolve([PARTY, STRANGER], patient=False)  # a builder: no wait

    found = await resolver.resolve([PARTY, STRANGER], patient=False)

    assert found[STRANGER] is None
    assert found[PARTY] is not None  # nothing from the recovering answer was cached


async def test_a_recovery_past_the_wait_limit_gives_up_for_now(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The import fails with ``PrivateDataUnavailable`` and the Raft applier tries the
    block again later (``RaftEngine._apply_forever``): never a permanent "not a party"."""
    monkeypatch.setattr(payloads, "RECOVERY_WAIT_SECONDS", 0.05)
    manager = FakeManager(answers={PARTY: [recovering()]})

    with pytest.raises(PrivateDataUnavailable, match="recovering"):
        await resolver_for(manager).resolve([PARTY], patient=True)


async def test_answers_are_cached_failures_are_not() -> None:
    other = b"\x03" * 64
    manager = FakeManager(answers={PARTY: [received()], STRANGER: [None], other: [timeout(), None]})
    resolver = resolver_for(manager)
    first = await resolver.resolve([PARTY, STRANGER, PARTY], patient=False)
    assert sorted(manager.asked) == [PARTY, STRANGER]
    with pytest.raises(PrivateDataUnavailable):
        await resolver.resolve([other], patient=False)
    manager.asked.clear()

    again = await resolver.resolve([STRANGER, PARTY], patient=False)
    recovered = await resolver.resolve([other], patient=False)

    assert again == first
    assert recovered == {other: None}
    assert manager.asked == [other]


async def test_the_cache_is_bounded_and_forgets_the_oldest_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(payloads, "CACHE_SIZE", 2)
    hashes = [bytes([index]) * 64 for index in range(1, 4)]
    manager = FakeManager(answers={payload_hash: [None] for payload_hash in hashes})
    resolver = resolver_for(manager)
    for payload_hash in hashes:
        await resolver.resolve([payload_hash])
    manager.asked.clear()

    await resolver.resolve(hashes[1:])
    assert manager.asked == []
    await resolver.resolve(hashes[:1])
    assert manager.asked == hashes[:1]


async def test_without_a_manager_the_node_is_party_to_nothing() -> None:
    assert await PayloadResolver(None).resolve([PARTY, STRANGER]) == {PARTY: None, STRANGER: None}


def private_blocks(manager: FakeManager) -> PrivateBlocks:
    db = MemoryOverlayDB()
    return PrivateBlocks(resolver_for(manager), PrivacyProcessor(db, PrivateStore(db)))


async def test_for_block_asks_only_for_the_private_transactions_payloads() -> None:
    manager = FakeManager(answers={PARTY: [received()], STRANGER: [None]})
    transactions = [
        transfer(KEYS[0], 0),
        private_transaction(KEYS[0], 1, PARTY),
        private_transaction(KEYS[1], 0, STRANGER),
    ]

    half = await private_blocks(manager).for_block(transactions, patient=False)
    public_only = await private_blocks(manager).for_block(transactions[:1], patient=False)

    assert sorted(manager.asked) == [PARTY, STRANGER]
    assert set(half.payloads) == {PARTY, STRANGER}
    assert half.payloads[STRANGER] is None
    assert half.payloads[PARTY] is not None
    assert public_only.payloads == {}


async def test_for_block_is_patient_only_when_asked() -> None:
    transactions = [private_transaction(KEYS[0], 0, PARTY)]
    impatient = FakeManager(answers={PARTY: [server_error(), received()]})
    with pytest.raises(PrivateDataUnavailable):
        await private_blocks(impatient).for_block(transactions, patient=False)
    assert impatient.asked == [PARTY]

    patient = FakeManager(answers={PARTY: [server_error(), received()]})
    half = await private_blocks(patient).for_block(transactions, patient=True)
    assert patient.asked == [PARTY, PARTY]
    assert half.payloads[PARTY] is not None
