"""Group commitments between real manager processes: delivery to the group only, forged
pushes refused, retries to a member that was down, durability under kill -9."""

from __future__ import annotations

import concurrent.futures
import json
import os
import time

import pytest

from quorum_shared import commitments
from quorum_shared.commitments import GroupCommitment, verify_json
from tests.tx_manager.conftest import Manager, ManagerFactory, Trio, http, post_json, wait_until
from tx_manager.client import CommitmentPage, CommitmentRequest, ManagerRequestFailed, SyncQ2TClient
from tx_manager.fields import privacy_group_id
from tx_manager.messages import parse_key

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _request(members: list[Manager], number: int, root: bytes | None = None) -> CommitmentRequest:
    keys = [m.public_key for m in members]
    return CommitmentRequest(
        chain_id=1337,
        group_id=privacy_group_id([parse_key(k, "key") for k in keys]),
        block_number=number,
        block_hash=os.urandom(32),
        root=root or os.urandom(32),
        members=tuple(keys),
    )


def _listed(manager: Manager) -> list[dict[str, object]]:
    """The raw JSON items of a manager's GET /commitments (every page)."""
    items: list[dict[str, object]] = []
    after = 0
    while True:
        status, body, _ = http("GET", f"{manager.q2t}/commitments?after={after}&limit=2")
        assert status == 200, body
        page = json.loads(body)
        if not page["commitments"]:
            return items
        items.extend(page["commitments"])
        after = page["next"]


def _holding(manager: Manager, signed: GroupCommitment) -> list[dict[str, object]]:
    return [item for item in _listed(manager) if item["commitment"] == signed.to_json()]


def test_a_commitment_reaches_the_other_members_and_no_one_else(trio: Trio) -> None:
    a, b, c = trio.a, trio.b, trio.c
    with SyncQ2TClient(a.q2t) as client:
        (signed,) = client.commit([_request([a, b], 1)])
        assert client.identity() == {a.public_key: signed.signer}
    received = wait_until(lambda: _holding(b, signed), 10, "b to receive a's commitment")
    assert [(item["own"], verify_json(item["commitment"])) for item in received] == [(False, True)]
    assert sorted(received[0]["members"]) == sorted([a.public_key, b.public_key])  # type: ignore[call-overload]
    assert [item["own"] for item in _holding(a, signed)] == [True]
    assert _holding(c, signed) == []
    with SyncQ2TClient(b.q2t) as client:
        page = client.commitments()
        assert [i.commitment for i in page.items if not i.own].count(signed) == 1
        assert page.next == page.items[-1].seq


def test_a_forged_push_is_refused_and_stores_nothing(trio: Trio) -> None:
    """Anyone can sign a claim naming A as member; no one but A's and B's key holders
    can make the tag that binds that signer to A for B."""
    a, b = trio.a, trio.b
    claim = _request([a, b], 2).claim_for(parse_key(a.public_key, "a"))
    forged = commitments.sign(claim, os.urandom(32))
    assert verify_json(forged.to_json())  # a valid signature, by the wrong identity
    before = len(_listed(b))
    for binding in ("0x" + "00" * 32, "0x" + os.urandom(32).hex()):
        item = {"commitment": forged.to_json(), "members": [a.public_key, b.public_key]}
        status, body = post_json(
            b.p2p + "/commitments/push",
            {"to": b.public_key, "items": [dict(item, binding=binding)]},
        )
        assert status == 403, body
        assert "binding tag" in body["error"]
    assert len(_listed(b)) == before


@pytest.mark.parametrize(
    "method, path, body, status",
    [
        ("POST", "/commitments", {"commitments": "x"}, 400),
        ("POST", "/commitments", {"commitments": [{"chainId": 1}]}, 400),
        ("POST", "/commitments", [], 400),
        ("GET", "/commitments?limit=0", None, 400),
        ("GET", "/commitments?limit=1001", None, 400),
        ("GET", "/commitments?after=-1", None, 400),
        ("GET", "/commitments?after=99999999999999999999", None, 400),
        ("GET", "/commitments?after=abc", None, 400),
        ("GET", "/commitments?waitMs=30001", None, 400),
        ("GET", "/commitments?waitMs=-5", None, 400),
    ],
)
def test_bad_input_is_a_400(trio: Trio, method: str, path: str, body: object, status: int) -> None:
    data = None if body is None else json.dumps(body).encode()
    answer, text, _ = http(method, trio.a.q2t + path, data, {"Content-Type": "application/json"})
    assert answer == status, text
    assert json.loads(text)["error"]


@pytest.mark.parametrize(
    "body",
    [{"to": "x", "items": []}, {"items": []}, {"to": None, "items": [{}]}, "x"],
)
def test_bad_pushes_are_a_400(trio: Trio, body: object) -> None:
    status, answer = post_json(trio.b.p2p + "/commitments/push", body)
    assert status == 400, answer


def test_a_second_root_for_one_height_is_a_409(trio: Trio) -> None:
    a, b = trio.a, trio.b
    with SyncQ2TClient(a.q2t) as client:
        first = client.commit([_request([a, b], 3, b"\x01" * 32)])
        assert client.commit([_request([a, b], 3, b"\x01" * 32)]) == first
        with pytest.raises(ManagerRequestFailed) as refused:
            client.commit([_request([a, b], 3, b"\x02" * 32)])
        assert refused.value.status == 409
        with pytest.raises(ManagerRequestFailed) as foreign:
            client.commit([_request([b, trio.c], 3)])
        assert foreign.value.status == 400
        assert "holds no key of group 0x" in foreign.value.reason


def _page_after_waiting(manager: Manager, after: int, wait: float) -> CommitmentPage:
    with SyncQ2TClient(manager.q2t) as client:
        return client.commitments(after, 1000, wait)


def test_an_empty_page_waits_for_the_next_commitment(trio: Trio) -> None:
    """A reader that asks with waitMs is answered when a commitment is stored (here one
    pushed by another member), not when its wait ends; with nothing stored it gets the
    empty page after the wait."""
    a, b = trio.a, trio.b
    with SyncQ2TClient(b.q2t) as reader:
        latest = 0
        while page := reader.commitments(latest).items:
            latest = page[-1].seq
        started = time.monotonic()
        assert reader.commitments(latest, wait=0.3).items == ()
        assert time.monotonic() - started >= 0.25

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(_page_after_waiting, b, latest, 20.0)
            time.sleep(0.3)
            assert not waiting.done()
            committed_at = time.monotonic()
            with SyncQ2TClient(a.q2t) as writer:
                (signed,) = writer.commit([_request([a, b], 11)])
            page = waiting.result(timeout=20)
            answered_after = time.monotonic() - committed_at
    assert [item.commitment for item in page.items] == [signed]
    assert answered_after < 10, answered_after  # the push's arrival, not the 20 s wait


def _pair(managers: ManagerFactory) -> tuple[Manager, Manager]:
    b = managers.start("b")
    a = managers.start("a", [b])
    wait_until(lambda: a.knows_key(b.public_key) and b.knows_key(a.public_key), 20, "a and b")
    return a, b


def test_a_member_that_was_down_receives_after_it_is_back(managers: ManagerFactory) -> None:
    a, b = _pair(managers)
    b.stop()
    with SyncQ2TClient(a.q2t) as client:
        (signed,) = client.commit([_request([a, b], 10)])
    b.start()
    wait_until(lambda: _holding(b, signed), 20, "the retried push to reach b")


def test_an_answered_commitment_survives_kill9(managers: ManagerFactory) -> None:
    a, b = _pair(managers)
    with SyncQ2TClient(a.q2t) as client:
        signed = client.commit([_request([a, b], n) for n in range(20, 30)])
    a.kill9()
    a.start()
    listed = [GroupCommitment.from_json(item["commitment"]) for item in _listed(a) if item["own"]]
    assert listed == signed
