"""Group commitments in process: the enclave's identity and binding tags, the store, the
service's refusals, and pushes between services over an in-memory network."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from quorum_shared import commitments
from quorum_shared.commitments import CommitmentClaim, GroupCommitment
from tests.tx_manager.conftest import StoreOpener
from tx_manager.commitment_messages import (
    CommitmentPush,
    CommitmentPushItem,
    CommitmentPushResult,
    CommitmentRequest,
    CommitRequest,
    StoredCommitment,
)
from tx_manager.commitments import CommitmentPusher, CommitmentService
from tx_manager.crypto_pool import CryptoPool
from tx_manager.enclave import Enclave, KeyPair, generate_keypair
from tx_manager.errors import (
    BadRequest,
    BindingRejected,
    CommitmentConflict,
    NotFound,
    PeerRequestFailed,
    RequestTooLarge,
)
from tx_manager.fields import privacy_group_id
from tx_manager.payload import b64encode
from tx_manager.store import SqliteStore


def _claim(member: bytes, root: bytes = b"\x11" * 32, number: int = 7) -> CommitmentClaim:
    return CommitmentClaim(
        chain_id=1337,
        group_id=privacy_group_id([member, b"\x09" * 32]),
        block_number=number,
        block_hash=b"\x22" * 32,
        root=root,
        member=member,
    )


def _request(
    members: list[bytes], root: bytes = b"\x11" * 32, number: int = 7, group_id: bytes | None = None
) -> CommitmentRequest:
    return CommitmentRequest(
        chain_id=1337,
        group_id=privacy_group_id(members) if group_id is None else group_id,
        block_number=number,
        block_hash=b"\x22" * 32,
        root=root,
        members=tuple(b64encode(m) for m in members),
    )


# -- enclave ---------------------------------------------------------------------------


def test_signing_uses_the_members_identity_and_is_deterministic() -> None:
    a, b = generate_keypair(), generate_keypair()
    enclave = Enclave([a, b])
    signed = enclave.sign_claim(_claim(a.public))
    assert commitments.verify(signed)
    assert signed.signer == enclave.identities[a.public]
    assert signed.signer != enclave.identities[b.public]
    assert enclave.sign_claim(_claim(a.public)) == signed
    # The identity follows the key pair, not the process: a restart signs as before.
    assert Enclave([a]).identities[a.public] == signed.signer
    with pytest.raises(NotFound):
        enclave.sign_claim(_claim(generate_keypair().public))


def test_binding_tag_is_checked_by_the_receiver_only() -> None:
    a, b, c = generate_keypair(), generate_keypair(), generate_keypair()
    enclave_a, enclave_b, enclave_c = Enclave([a]), Enclave([b]), Enclave([c])
    signer = enclave_a.identities[a.public]
    tag = enclave_a.binding_tag(a.public, b.public, signer)
    assert enclave_b.check_binding(b.public, a.public, signer, tag)
    assert not enclave_b.check_binding(b.public, a.public, os.urandom(32), tag)
    assert not enclave_b.check_binding(b.public, a.public, signer, bytes(32))
    # C, a member too, cannot vouch for A's signer towards B, nor reuse A's tag for itself.
    forged = enclave_c.binding_tag(c.public, b.public, signer)
    assert not enclave_b.check_binding(b.public, a.public, signer, forged)
    assert not enclave_c.check_binding(c.public, a.public, signer, tag)


def test_binding_keys_are_cached_like_box_keys() -> None:
    a, b = generate_keypair(), generate_keypair()
    enclave = Enclave([a])
    signer = enclave.identities[a.public]
    enclave.binding_tag(a.public, b.public, signer)
    cached = enclave.derived_keys_cached
    enclave.binding_tag(a.public, b.public, signer)
    assert enclave.derived_keys_cached == cached
    enclave.box_key(a.public, b.public)
    assert enclave.derived_keys_cached == cached + 1  # separate uses, separate keys


# -- store -----------------------------------------------------------------------------


def _record(
    enclave: Enclave, member: bytes, own: bool, root: bytes = b"\x11" * 32, number: int = 7
) -> StoredCommitment:
    signed = enclave.sign_claim(_claim(member, root, number))
    return StoredCommitment(0, own, (b64encode(member), b64encode(b"\x09" * 32)), signed)


async def test_store_is_idempotent_refuses_a_second_own_root_and_pages(
    open_store: StoreOpener,
) -> None:
    key = generate_keypair()
    enclave = Enclave([key])
    store = open_store()
    try:
        (first,) = await store.save_commitments([_record(enclave, key.public, True)])
        assert first.seq > 0
        (again,) = await store.save_commitments([_record(enclave, key.public, True)])
        assert again == first
        with pytest.raises(CommitmentConflict):
            await store.save_commitments([_record(enclave, key.public, True, b"\x33" * 32)])
        group_id = first.commitment.claim.group_id
        assert await store.find_own_commitment(group_id, 7, key.public) == first
        assert await store.find_own_commitment(group_id, 8, key.public) is None
        more = await store.save_commitments(
            [_record(enclave, key.public, True, number=n) for n in range(8, 13)]
        )
        page = await store.page_commitments(0, 3)
        assert [r.seq for r in page] == [first.seq, more[0].seq, more[1].seq]
        rest = await store.page_commitments(page[-1].seq, 1000)
        assert [r.commitment.height for r in rest] == [10, 11, 12]
        assert await store.page_commitments(rest[-1].seq, 10) == []
    finally:
        await store.close()


async def test_store_keeps_a_members_two_roots_as_evidence(open_store: StoreOpener) -> None:
    key = generate_keypair()
    enclave = Enclave([key])
    store = open_store()
    try:
        received = [
            _record(enclave, key.public, False, b"\x33" * 32),
            _record(enclave, key.public, False, b"\x44" * 32),
        ]
        stored = await store.save_commitments(received)
        assert len({r.seq for r in stored}) == 2
        assert [r.own for r in await store.page_commitments(0, 10)] == [False, False]
    finally:
        await store.close()


async def test_store_one_bad_record_stores_none_of_its_batch(open_store: StoreOpener) -> None:
    key = generate_keypair()
    enclave = Enclave([key])
    store = open_store()
    try:
        await store.save_commitments([_record(enclave, key.public, True)])
        with pytest.raises(CommitmentConflict):
            await store.save_commitments(
                [
                    _record(enclave, key.public, True, number=99),
                    _record(enclave, key.public, True, b"\x33" * 32),
                ]
            )
        assert len(await store.page_commitments(0, 10)) == 1
    finally:
        await store.close()


async def test_store_keeps_commitments_across_reopen_and_the_largest_height(
    open_store: StoreOpener,
) -> None:
    key = generate_keypair()
    enclave = Enclave([key])
    store = open_store()
    try:
        saved = await store.save_commitments([_record(enclave, key.public, True, number=2**64 - 1)])
    finally:
        await store.close()
    reopened = open_store()
    try:
        assert await reopened.page_commitments(0, 10) == saved
        group_id = saved[0].commitment.claim.group_id
        assert await reopened.find_own_commitment(group_id, 2**64 - 1, key.public) == saved[0]
    finally:
        await reopened.close()


async def test_a_store_of_the_previous_version_opens_and_gains_the_table(tmp_path: Path) -> None:
    path = tmp_path / "tm.db"
    connection = sqlite3.connect(path)
    connection.executescript(
        "CREATE TABLE envelopes (hash BLOB PRIMARY KEY, data BLOB NOT NULL);"
        "CREATE TABLE raw_transactions (hash BLOB PRIMARY KEY, data BLOB NOT NULL);"
        "CREATE TABLE envelope_bodies (body_id BLOB PRIMARY KEY, hash BLOB NOT NULL)"
        " WITHOUT ROWID;"
        "PRAGMA user_version=1;"
    )
    connection.close()
    key = generate_keypair()
    store = SqliteStore(path)
    try:
        assert await store.count_envelopes() == 0
        await store.save_commitments([_record(Enclave([key]), key.public, True)])
        assert len(await store.page_commitments(0, 10)) == 1
    finally:
        await store.close()


# -- service over an in-memory network -------------------------------------------------


class Network:
    """Routes keys to services by URL; a URL in ``down`` refuses like a dead process."""

    def __init__(self) -> None:
        self.services: dict[str, CommitmentService] = {}
        self.routes: dict[bytes, str] = {}
        self.down: set[str] = set()
        self.hanging: set[str] = set()
        self.pushes: list[tuple[str, int]] = []

    def url_for(self, key: bytes) -> str | None:
        return self.routes.get(key)

    async def push_commitments(self, url: str, push: CommitmentPush) -> int:
        if url in self.down:
            raise PeerRequestFailed(url, "ClientConnectorError: connection refused")
        if url in self.hanging:
            await asyncio.Event().wait()  # until the pusher is closed
        self.pushes.append((url, len(push.items)))
        wire = CommitmentPush.from_bytes(push.to_bytes())  # exactly what HTTP would carry
        stored = await self.services[url].accept(wire)
        return CommitmentPushResult.from_bytes(CommitmentPushResult(stored).to_bytes()).stored


@dataclass
class Party:
    keys: list[KeyPair]
    service: CommitmentService
    store: SqliteStore

    @property
    def key(self) -> bytes:
        return self.keys[0].public

    async def stored(self) -> list[StoredCommitment]:
        return await self.store.page_commitments(0, 1000)


@pytest.fixture
async def network(tmp_path: Path) -> AsyncIterator[tuple[Network, dict[str, Party]]]:
    net = Network()
    crypto = CryptoPool(1)
    parties: dict[str, Party] = {}
    for name, key_count in (("a", 2), ("b", 1), ("c", 1)):
        keys = [generate_keypair() for _ in range(key_count)]
        enclave = Enclave(keys)
        store = SqliteStore(tmp_path / f"{name}.db")
        service = CommitmentService(enclave, store, net, net, crypto)
        service.pusher = CommitmentPusher(net, net, retry_interval=0.05)
        net.services[name] = service
        for key in keys:
            net.routes[key.public] = name
        parties[name] = Party(keys, service, store)
    try:
        yield net, parties
    finally:
        for party in parties.values():
            await party.service.close()
            await party.store.close()
        await crypto.close()


async def _eventually(condition: object, what: str, timeout: float = 5.0) -> None:
    async def check() -> None:
        while not await condition():  # type: ignore[operator]
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(check(), timeout)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def test_commit_signs_stores_and_reaches_only_the_group(
    network: tuple[Network, dict[str, Party]],
) -> None:
    net, p = network
    (signed,) = await p["a"].service.commit((_request([p["a"].key, p["b"].key]),))
    assert commitments.verify(signed)
    assert signed.claim.member == p["a"].key
    assert [(r.own, r.commitment) for r in await p["a"].stored()] == [(True, signed)]

    async def b_has_it() -> bool:
        return [(r.own, r.commitment) for r in await p["b"].stored()] == [(False, signed)]

    await _eventually(b_has_it, "b to receive a's commitment")
    assert await p["c"].stored() == []
    assert [url for url, _ in net.pushes] == ["b"]


async def test_a_manager_signs_once_per_local_key_of_the_group(
    network: tuple[Network, dict[str, Party]],
) -> None:
    net, p = network
    a1, a2 = (k.public for k in p["a"].keys)
    signed = await p["a"].service.commit((_request([a1, a2, p["b"].key]),))
    assert sorted(s.claim.member for s in signed) == sorted([a1, a2])

    async def b_has_both() -> bool:
        return len(await p["b"].stored()) == 2

    await _eventually(b_has_both, "b to receive both of a's commitments")


async def test_commit_refuses_a_wrong_group_id_and_a_foreign_group(
    network: tuple[Network, dict[str, Party]],
) -> None:
    _, p = network
    members = [p["a"].key, p["b"].key]
    with pytest.raises(BadRequest, match="is not the id of its members"):
        await p["a"].service.commit((_request(members, group_id=os.urandom(32)),))
    with pytest.raises(BadRequest, match="holds no key of group 0x"):
        await p["c"].service.commit((_request(members),))
    assert await p["a"].stored() == [] and await p["c"].stored() == []


async def test_commit_refuses_an_invalid_member_key_before_storing(
    network: tuple[Network, dict[str, Party]],
) -> None:
    _, p = network
    with pytest.raises(BadRequest, match="X25519 key"):
        await p["a"].service.commit((_request([p["a"].key, bytes(32)]),))
    assert await p["a"].stored() == []


async def test_commit_refuses_a_second_root_and_repeats_the_same_one(
    network: tuple[Network, dict[str, Party]],
) -> None:
    _, p = network
    members = [p["a"].key, p["b"].key]
    (first,) = await p["a"].service.commit((_request(members),))
    (again,) = await p["a"].service.commit((_request(members),))
    assert again == first
    with pytest.raises(CommitmentConflict):
        await p["a"].service.commit((_request(members, root=b"\x33" * 32),))
    # Refused as a whole: the good item beside the equivocating one is not signed either.
    with pytest.raises(CommitmentConflict):
        await p["a"].service.commit(
            (_request(members, number=8), _request(members, root=b"\x33" * 32))
        )
    assert [r.commitment for r in await p["a"].stored()] == [first]


async def _push_from_a(p: dict[str, Party], **changes: object) -> CommitmentPush:
    """A push of a fresh commitment of a's to b, as a's manager would send it."""
    members = (p["a"].key, p["b"].key)
    enclave = p["a"].service.enclave
    claim = _request(list(members), number=50).claim_for(p["a"].key)
    signed = enclave.sign_claim(claim)
    tag = enclave.binding_tag(p["a"].key, p["b"].key, signed.signer)
    item = CommitmentPushItem(signed, tuple(b64encode(m) for m in members), tag)
    return CommitmentPush(p["b"].key, (replace(item, **changes),))  # type: ignore[arg-type]


async def test_accept_refuses_a_forged_binding_and_stores_nothing(
    network: tuple[Network, dict[str, Party]],
) -> None:
    _, p = network
    good = await _push_from_a(p)
    # C signs a claim naming A as member, with C's own identity and a tag of its making.
    c_enclave = p["c"].service.enclave
    signed_by_c = commitments.sign(
        good.items[0].commitment.claim, commitments.identity_seed(p["c"].keys[0].private)
    )
    forged_tag = c_enclave.binding_tag(p["c"].key, p["b"].key, signed_by_c.signer)
    forged = replace(good.items[0], commitment=signed_by_c, binding=forged_tag)
    with pytest.raises(BindingRejected):
        await p["b"].service.accept(CommitmentPush(p["b"].key, (good.items[0], forged)))
    with pytest.raises(BindingRejected):
        await p["b"].service.accept(await _push_from_a(p, binding=os.urandom(32)))
    assert await p["b"].stored() == []
    assert await p["b"].service.accept(good) == 1
    assert await p["b"].service.accept(good) == 1  # a repeated push is idempotent
    assert len(await p["b"].stored()) == 1


async def test_accept_refuses_a_bad_signature(network: tuple[Network, dict[str, Party]]) -> None:
    _, p = network
    push = await _push_from_a(p)
    commitment = push.items[0].commitment
    tampered = GroupCommitment(
        replace(commitment.claim, root=b"\x55" * 32), commitment.signer, commitment.signature
    )
    with pytest.raises(BadRequest, match="signature"):
        await p["b"].service.accept(
            CommitmentPush(push.to, (replace(push.items[0], commitment=tampered),))
        )
    assert await p["b"].stored() == []


async def test_accept_refuses_items_outside_their_group(
    network: tuple[Network, dict[str, Party]],
) -> None:
    _, p = network
    push = await _push_from_a(p)
    with pytest.raises(BadRequest, match="not a member"):
        await p["c"].service.accept(replace(push, to=p["c"].key))
    with pytest.raises(BadRequest, match="not a key of this manager"):
        await p["b"].service.accept(replace(push, to=p["c"].key))
    three = (p["a"].key, p["b"].key, p["c"].key)
    with pytest.raises(BadRequest, match="is not the id of its members"):
        await p["b"].service.accept(
            await _push_from_a(p, members=tuple(b64encode(k) for k in three))
        )
    with pytest.raises(BadRequest, match="is not in members"):
        await p["b"].service.accept(
            await _push_from_a(p, members=(b64encode(p["b"].key), b64encode(p["c"].key)))
        )
    # B's own manager never receives B's commitments from someone else.
    b_signed = p["b"].service.enclave.sign_claim(
        _request([p["a"].key, p["b"].key]).claim_for(p["b"].key)
    )
    with pytest.raises(BadRequest, match="is a key of this manager"):
        await p["b"].service.accept(await _push_from_a(p, commitment=b_signed))
    assert await p["b"].stored() == [] and await p["c"].stored() == []


def test_more_than_a_thousand_items_are_refused_when_parsed() -> None:
    item = _request([os.urandom(32)]).to_json()
    with pytest.raises(RequestTooLarge):
        CommitRequest.from_json({"commitments": [item] * 1001})
    with pytest.raises(RequestTooLarge):
        CommitmentPush.from_json({"to": b64encode(bytes(32)), "items": [{}] * 1001})


@pytest.mark.parametrize(
    "change",
    [
        {"groupId": "0x1234"},
        {"groupId": "12" * 32},
        {"blockNumber": -1},
        {"blockNumber": 2**64},
        {"chainId": True},
        {"root": None},
        {"members": []},
        {"members": ["not base64!"]},
        {"members": [b64encode(b"short")]},
    ],
)
def test_malformed_commit_requests_are_bad_requests(change: dict[str, object]) -> None:
    item = {**_request([os.urandom(32)]).to_json(), **change}
    with pytest.raises(BadRequest):
        CommitRequest.from_json({"commitments": [item]})


async def test_a_member_that_is_down_receives_after_it_comes_back(
    network: tuple[Network, dict[str, Party]],
) -> None:
    net, p = network
    net.down.add("b")
    (signed,) = await p["a"].service.commit((_request([p["a"].key, p["b"].key]),))
    await _eventually(
        lambda: asyncio.sleep(0, result=p["a"].service.pusher.queued == 1), "a push to wait"
    )
    net.down.discard("b")

    async def b_has_it() -> bool:
        return [r.commitment for r in await p["b"].stored()] == [signed]

    await _eventually(b_has_it, "the retry to reach b")
    assert p["a"].service.pusher.queued == 0


async def test_a_hanging_member_delays_no_other(
    network: tuple[Network, dict[str, Party]],
) -> None:
    net, p = network
    net.hanging.add("b")
    await p["a"].service.commit((_request([p["a"].key, p["b"].key, p["c"].key]),))

    async def c_has_it() -> bool:
        return len(await p["c"].stored()) == 1

    await _eventually(c_has_it, "c to receive while b hangs")
    await p["a"].service.commit((_request([p["a"].key, p["c"].key], number=8),))

    async def c_has_both() -> bool:
        return len(await p["c"].stored()) == 2

    await _eventually(c_has_both, "c to receive a second commitment while b hangs")
    assert await p["b"].stored() == []
    assert p["a"].service.pusher.queued == 1  # b's, in a request under way


async def test_a_member_with_no_known_url_is_retried_until_discovered(
    network: tuple[Network, dict[str, Party]],
) -> None:
    net, p = network
    b_url = net.routes.pop(p["b"].key)
    await p["a"].service.commit((_request([p["a"].key, p["b"].key]),))
    await asyncio.sleep(0.1)  # several retry rounds with no route
    assert await p["b"].stored() == []
    net.routes[p["b"].key] = b_url

    async def b_has_it() -> bool:
        return len(await p["b"].stored()) == 1

    await _eventually(b_has_it, "b to receive once its URL is known")


async def test_the_push_queue_is_bounded_and_drops_the_oldest() -> None:
    net = Network()
    pusher = CommitmentPusher(net, net, max_queued=3, retry_interval=60)
    key = generate_keypair()
    enclave = Enclave([key])
    items = [
        (
            os.urandom(32),
            CommitmentPushItem(
                _record(enclave, key.public, True, number=n).commitment, (), bytes(32)
            ),
        )
        for n in range(5)
    ]
    try:
        pusher.enqueue(items)  # no route for any key: all wait
        await asyncio.sleep(0.05)
        assert pusher.queued == 3
        assert pusher.dropped == 2
    finally:
        await pusher.close()


# A commitment row as this version writes it: never edit; a new format must keep reading it.
_FROZEN_COMMITMENT = {
    "chainId": 1337,
    "groupId": "0x" + "01" * 32,
    "blockNumber": 42,
    "blockHash": "0x" + "02" * 32,
    "root": "0x" + "03" * 32,
    "member": "BAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ=",
    "signer": "0x6e7a1cdd29b0b78fd13af4c5598feff4ef2a97166e3ca6f2e4fbfccd80505bf1",
    "signature": "0x0f6390c6e77c16663aabd0eba0fd2c31a137f1ab306a08675a870967b225058e"
    "845a1c9d721290572453ead61f0c78c71fc9da91e2d8806739b690714e5e6d06",
}


async def test_a_stored_commitment_row_of_this_version_stays_readable(tmp_path: Path) -> None:
    claim = CommitmentClaim(1337, b"\x01" * 32, 42, b"\x02" * 32, b"\x03" * 32, b"\x04" * 32)
    assert commitments.sign(claim, b"\x05" * 32).to_json() == _FROZEN_COMMITMENT
    await SqliteStore(tmp_path / "tm.db").close()  # creates the schema
    connection = sqlite3.connect(tmp_path / "tm.db")
    connection.execute(
        "INSERT INTO commitments (group_id, block_number, member, root, signer, commitment,"
        " own, members) VALUES (?, ?, ?, ?, ?, ?, 1, ?)",
        (
            b"\x01" * 32,
            (42).to_bytes(8, "big"),
            b"\x04" * 32,
            b"\x03" * 32,
            bytes.fromhex(_FROZEN_COMMITMENT["signer"][2:]),  # type: ignore[index]
            json.dumps(_FROZEN_COMMITMENT),
            json.dumps([_FROZEN_COMMITMENT["member"]]),
        ),
    )
    connection.commit()
    connection.close()
    store = SqliteStore(tmp_path / "tm.db")
    try:
        (row,) = await store.page_commitments(0, 10)
        assert row.own and row.members == (_FROZEN_COMMITMENT["member"],)
        assert row.commitment.to_json() == _FROZEN_COMMITMENT
        assert await store.find_own_commitment(b"\x01" * 32, 42, b"\x04" * 32) == row
    finally:
        await store.close()
