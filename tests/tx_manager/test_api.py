"""Three real managers (A knows B, B knows C): sends, reads, discovery, pushes, client."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
from dataclasses import replace
from urllib.parse import quote

import pytest

from quorum_shared.version import package_version
from tests.tx_manager.conftest import (
    Manager,
    ManagerFactory,
    Trio,
    envelope_count,
    http,
    post_json,
    wait_until,
)
from tx_manager.client import ManagerRequestFailed, ManagerUnavailable, Q2TClient, SyncQ2TClient
from tx_manager.enclave import Enclave, generate_keypair
from tx_manager.errors import BadRequest
from tx_manager.messages import API_VERSION, EnvelopeBatch, ReceiveManyRequest
from tx_manager.payload import (
    EncodedPayload,
    ExecutionTerms,
    HeaderBinding,
    PrivacyMode,
    b64encode,
    decode_envelope,
    privacy_group_id,
)

pytestmark = pytest.mark.integration


def path_hash(key_b64: str) -> str:
    return quote(key_b64, safe="")


def test_a_sends_to_b_b_reads_c_gets_404(trio: Trio) -> None:
    status, body = trio.a.send(b"for b only", [trio.b.public_key])
    assert status == 201, body
    key = body["key"]
    assert len(base64.b64decode(key)) == 64
    assert body["senderKey"] == trio.a.public_key
    assert body["managedParties"] == [trio.a.public_key]
    for reader, expected_managed in ((trio.a, trio.a.public_key), (trio.b, trio.b.public_key)):
        status, raw, _ = http("GET", f"{reader.q2t}/transaction/{path_hash(key)}")
        assert status == 200
        received = json.loads(raw)
        assert base64.b64decode(received["payload"]) == b"for b only"
        assert received["senderKey"] == trio.a.public_key
        assert received["managedParties"] == [expected_managed]
        assert received["privacyFlag"] == 0
        assert sorted(received["parties"]) == sorted([trio.a.public_key, trio.b.public_key])
    status, raw, _ = http("GET", f"{trio.c.q2t}/transaction/{path_hash(key)}")
    assert status == 404
    assert "error" in json.loads(raw)


def test_send_answers_location_header(trio: Trio) -> None:
    status, body, headers = http(
        "POST",
        trio.a.q2t + "/send",
        json.dumps({"payload": b64encode(b"x"), "to": [trio.b.public_key]}).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 201
    assert headers["Location"] == "transaction/" + json.loads(body)["key"]


def test_discovered_peer_of_peer_receives(trio: Trio) -> None:
    """A was configured with B only; it learnt C's key through B and can send to C."""
    status, body = trio.a.send(b"to c via discovery", [trio.c.public_key])
    assert status == 201, body
    status, raw, _ = http("GET", f"{trio.c.q2t}/transaction/{path_hash(body['key'])}")
    assert status == 200
    assert base64.b64decode(json.loads(raw)["payload"]) == b"to c via discovery"
    assert http("GET", f"{trio.b.q2t}/transaction/{path_hash(body['key'])}")[0] == 404


def test_group_keys_reach_every_party(trio: Trio) -> None:
    everyone = [trio.a.public_key, trio.b.public_key, trio.c.public_key]
    status, body = trio.a.send(b"group", everyone[1:])
    assert status == 201
    ids = set()
    for manager in (trio.a, trio.b, trio.c):
        received = json.loads(http("GET", f"{manager.q2t}/transaction/{path_hash(body['key'])}")[1])
        assert sorted(received["parties"]) == sorted(everyone)
        ids.add(received["privacyGroupId"])
        participants = http(
            "GET", f"{manager.q2t}/transaction/{path_hash(body['key'])}/participants"
        )[1].decode()
        assert sorted(participants.split(",")) == sorted(everyone)
    expected = privacy_group_id([base64.b64decode(k) for k in everyone])
    assert ids == {b64encode(expected)}


def test_is_sender_delete_and_hash_forms(trio: Trio) -> None:
    status, body = trio.a.send(b"forms", [trio.b.public_key])
    raw_hash = base64.b64decode(body["key"])
    for form in (
        path_hash(body["key"]),
        raw_hash.hex(),
        base64.urlsafe_b64encode(raw_hash).decode().rstrip("="),
    ):
        assert http("GET", f"{trio.b.q2t}/transaction/{form}")[0] == 200
    assert http("GET", f"{trio.a.q2t}/transaction/{raw_hash.hex()}/isSender")[1] == b"true"
    assert http("GET", f"{trio.b.q2t}/transaction/{raw_hash.hex()}/isSender")[1] == b"false"
    assert http("DELETE", f"{trio.b.q2t}/transaction/{raw_hash.hex()}")[0] == 204
    assert http("GET", f"{trio.b.q2t}/transaction/{raw_hash.hex()}")[0] == 404
    assert http("DELETE", f"{trio.b.q2t}/transaction/{raw_hash.hex()}")[0] == 404
    assert http("GET", f"{trio.a.q2t}/transaction/{raw_hash.hex()}")[0] == 200


def test_storeraw_sendsignedtx_receiveraw(trio: Trio) -> None:
    status, stored = post_json(trio.a.q2t + "/storeraw", {"payload": b64encode(b"signed")})
    assert status == 200
    raw_key = stored["key"]
    # Kept apart: not an envelope until distributed.
    assert http("GET", f"{trio.a.q2t}/transaction/{path_hash(raw_key)}")[0] == 404
    status, raw_view, _ = http("GET", f"{trio.a.q2t}/transaction/{path_hash(raw_key)}?isRaw=true")
    assert status == 200 and base64.b64decode(json.loads(raw_view)["payload"]) == b"signed"
    status, sent = post_json(
        trio.a.q2t + "/sendsignedtx",
        {"hash": raw_key, "to": [trio.c.public_key], "privacyFlag": 1},
    )
    assert status == 201, sent
    assert sent["key"] == raw_key
    status, plain, headers = http(
        "GET",
        trio.c.q2t + "/receiveraw",
        headers={"c11n-key": raw_key, "c11n-to": trio.c.public_key},
    )
    assert status == 200 and plain == b"signed"
    assert headers["Content-Type"] == "application/octet-stream"
    received = json.loads(http("GET", f"{trio.c.q2t}/transaction/{path_hash(raw_key)}")[1])
    assert received["privacyFlag"] == 1
    status, missing = post_json(
        trio.a.q2t + "/sendsignedtx", {"hash": b64encode(os.urandom(64)), "to": []}
    )
    assert status == 404


def test_keys_upcheck_version(trio: Trio) -> None:
    for path in ("/keys", "/partyinfo/keys"):
        status, body, _ = http("GET", trio.a.q2t + path)
        assert status == 200
        assert json.loads(body) == {"keys": [{"key": trio.a.public_key}]}
    assert http("GET", trio.a.q2t + "/upcheck")[1] == b"I'm up!"
    assert http("GET", trio.a.p2p + "/upcheck")[1] == b"I'm up!"
    assert json.loads(http("GET", trio.a.p2p + "/partyinfo/keys")[1]) == {
        "keys": [{"key": trio.a.public_key}]
    }
    assert http("GET", trio.a.q2t + "/version")[1].decode() == package_version()
    assert json.loads(http("GET", trio.a.q2t + "/version/api")[1]) == [API_VERSION]
    key_file = (trio.a.directory / "a.key").read_text()
    private = json.loads(key_file)["data"]["bytes"]
    for path in ("/keys", "/partyinfo/keys"):
        assert private not in http("GET", trio.a.q2t + path)[1].decode()
    assert private not in http("GET", trio.a.p2p + "/partyinfo")[1].decode()
    assert private not in trio.a.log_path.read_text()


def test_unknown_recipient_names_the_key(trio: Trio) -> None:
    stranger = b64encode(generate_keypair().public)
    before = envelope_count(trio.a)
    status, body = trio.a.send(b"nobody", [trio.b.public_key, stranger])
    assert status == 404
    assert stranger in body["error"]
    assert envelope_count(trio.a) == before


def test_recipient_down_fails_whole_send(trio: Trio, managers: ManagerFactory) -> None:
    d = managers.start("d", [trio.a])
    wait_until(lambda: trio.a.knows_key(d.public_key), 20, "A to learn D")
    d.kill9()
    before = envelope_count(trio.a)
    status, body = trio.a.send(b"d is down", [trio.b.public_key, d.public_key])
    assert status == 502
    assert d.public_key in body["error"]
    assert envelope_count(trio.a) == before
    assert http("GET", trio.a.q2t + "/upcheck")[0] == 200


def _push(url: str, data: bytes, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    status, body, _ = http(
        "POST", url + "/push", data, {"Content-Type": "application/octet-stream", **(headers or {})}
    )
    return status, body


def _envelope_for_b(trio: Trio) -> EncodedPayload:
    """A genuine envelope from A to B, fetched through A's resend INDIVIDUAL."""
    status, body = trio.a.send(b"genuine", [trio.b.public_key])
    assert status == 201
    status, raw, _ = http(
        "POST",
        trio.a.p2p + "/resend",
        json.dumps(
            {"type": "INDIVIDUAL", "publicKey": trio.b.public_key, "key": body["key"]}
        ).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 200
    envelope = decode_envelope(raw)
    assert isinstance(envelope, EncodedPayload)
    assert envelope.recipient_keys == (base64.b64decode(trio.b.public_key),)
    return envelope


def test_genuine_push_is_idempotent(trio: Trio) -> None:
    envelope = _envelope_for_b(trio)
    status, body = _push(trio.b.p2p, envelope.to_bytes(), {"c11n-key": b64encode(envelope.hash)})
    assert status == 201 and body.decode() == b64encode(envelope.hash)


def test_tampered_pushes_are_rejected(trio: Trio) -> None:
    envelope = _envelope_for_b(trio)
    encoded = bytearray(envelope.to_bytes())
    encoded[40] ^= 1
    status, body = _push(trio.b.p2p, bytes(encoded))
    assert status == 400 and b"checksum" in body
    flipped = bytes([envelope.cipher_text[0] ^ 1]) + envelope.cipher_text[1:]
    tampered = replace(envelope, cipher_text=flipped)
    status, body = _push(trio.b.p2p, tampered.to_bytes(), {"c11n-key": b64encode(envelope.hash)})
    assert status == 422 and b"hash" in body
    status, body = _push(trio.b.p2p, tampered.to_bytes())
    assert status == 422
    assert http("GET", f"{trio.b.q2t}/transaction/{tampered.hash.hex()}")[0] == 404


def test_forged_push_is_rejected(trio: Trio) -> None:
    forger = generate_keypair()
    recipient = base64.b64decode(trio.b.public_key)
    victim = base64.b64decode(trio.a.public_key)
    forged = Enclave([forger]).encrypt(b"evil", forger.public, [recipient])
    pushed = forged.for_recipients({recipient})
    claimed = replace(
        pushed,
        header=replace(
            pushed.header, sender_key=victim, terms=ExecutionTerms.build(victim, [recipient])
        ),
    )
    status, body = _push(trio.b.p2p, claimed.to_bytes())
    assert status == 422, body
    # An envelope with no box for any of B's keys is refused too.
    unrelated = Enclave([forger]).encrypt(b"x", forger.public, [generate_keypair().public])
    assert _push(trio.b.p2p, unrelated.to_bytes())[0] == 422
    assert http("GET", f"{trio.b.q2t}/transaction/{claimed.hash.hex()}")[0] == 404


def _parties(manager: Manager, tx_hash: bytes) -> list[str]:
    status, raw, _ = http("GET", f"{manager.q2t}/transaction/{tx_hash.hex()}")
    assert status == 200, raw
    received = json.loads(raw)
    return sorted(received["parties"])


def test_forged_group_flag_or_mandatory_push_is_a_409_and_changes_nothing(trio: Trio) -> None:
    """Someone on the path replays B's copy with another header: B refuses it and logs it."""
    envelope = _envelope_for_b(trio)
    original = _parties(trio.b, envelope.hash)
    terms = envelope.header.terms
    assert terms is not None
    c_key = base64.b64decode(trio.c.public_key)
    forgeries = {
        "extra group key": replace(terms, group_keys=tuple(sorted({*terms.group_keys, c_key}))),
        "changed flag": replace(terms, privacy_mode=PrivacyMode.PRIVATE_STATE_VALIDATION),
        "changed mandatory recipients": replace(
            terms,
            privacy_mode=PrivacyMode.MANDATORY_RECIPIENTS,
            mandatory_recipients=(base64.b64decode(trio.b.public_key),),
        ),
    }
    log_before = len(trio.b.log_path.read_text())
    for what, forged_terms in forgeries.items():
        forged = replace(envelope, header=replace(envelope.header, terms=forged_terms))
        status, body = _push(trio.b.p2p, forged.to_bytes())
        assert status == 409, (what, body)
        assert b64encode(envelope.hash).encode() in body, what
        assert http("GET", f"{trio.b.q2t}/transaction/{forged.hash.hex()}")[0] == 404
        # With the original hash announced, the envelope contradicts it: refused before anything.
        status, body = _push(trio.b.p2p, forged.to_bytes(), {"c11n-key": b64encode(envelope.hash)})
        assert status == 422 and b"announced hash" in body, (what, body)
    # The same through /pushBatch: the whole batch is refused, nothing of it stored.
    other_sender, b_key = generate_keypair(), base64.b64decode(trio.b.public_key)
    fresh = Enclave([other_sender]).encrypt(b"fresh", other_sender.public, [b_key])
    fresh = fresh.for_recipients({b_key})  # valid on its own
    forged = replace(envelope, header=replace(envelope.header, terms=forgeries["changed flag"]))
    status, body, _ = http(
        "POST",
        trio.b.p2p + "/pushBatch",
        EnvelopeBatch((fresh, forged)).to_bytes(),
        {"Content-Type": "application/octet-stream"},
    )
    assert status == 409, body
    assert http("GET", f"{trio.b.q2t}/transaction/{fresh.hash.hex()}")[0] == 404
    # A merge may only add boxes for keys of the group.
    outsider = generate_keypair().public
    boxed_outside = replace(
        envelope,
        recipient_keys=(*envelope.recipient_keys, outsider),
        recipient_boxes=(*envelope.recipient_boxes, os.urandom(48)),
    )
    status, body = _push(trio.b.p2p, boxed_outside.to_bytes())
    assert status == 409 and b"outside the authenticated group" in body, body
    assert _parties(trio.b, envelope.hash) == original
    warnings = trio.b.log_path.read_text()[log_before:]
    assert warnings.count("refused a push") >= len(forgeries) + 1


def test_push_whose_box_does_not_open_is_refused(trio: Trio) -> None:
    envelope = _envelope_for_b(trio)
    garbled = replace(envelope, recipient_boxes=(os.urandom(48),))
    status, body = _push(trio.b.p2p, garbled.to_bytes(), {"c11n-key": b64encode(envelope.hash)})
    assert status == 422 and b"did not open" in body, body
    # A copy carrying only the sender's own box: a group member's, but nothing B holds opens it.
    status, raw, _ = http(
        "POST",
        trio.a.p2p + "/resend",
        json.dumps(
            {"type": "INDIVIDUAL", "publicKey": trio.a.public_key, "key": b64encode(envelope.hash)}
        ).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 200
    full = decode_envelope(raw)
    sender_only = full.for_recipients({base64.b64decode(trio.a.public_key)})
    status, body = _push(trio.b.p2p, sender_only.to_bytes())
    assert status == 422 and b"not for a key held here" in body, body
    assert _parties(trio.b, envelope.hash) == sorted([trio.a.public_key, trio.b.public_key])


def test_storeraw_with_recipients_fixes_the_group(trio: Trio) -> None:
    status, stored = post_json(
        trio.a.q2t + "/storeraw",
        {"payload": b64encode(b"fixed group"), "to": [trio.c.public_key], "privacyFlag": 1},
    )
    assert status == 200, stored
    raw_key = stored["key"]
    status, refused = post_json(
        trio.a.q2t + "/sendsignedtx",
        {"hash": raw_key, "to": [trio.b.public_key], "privacyFlag": 1},
    )
    assert status == 400, refused
    assert trio.b.public_key in refused["error"] and trio.c.public_key in refused["error"]
    status, refused = post_json(
        trio.a.q2t + "/sendsignedtx", {"hash": raw_key, "to": [trio.c.public_key]}
    )
    assert status == 400 and "privacyFlag" in refused["error"], refused
    status, sent = post_json(
        trio.a.q2t + "/sendsignedtx",
        {"hash": raw_key, "to": [trio.c.public_key], "privacyFlag": 1},
    )
    assert status == 201, sent
    assert sent["key"] == raw_key
    received = json.loads(http("GET", f"{trio.c.q2t}/transaction/{path_hash(raw_key)}")[1])
    assert base64.b64decode(received["payload"]) == b"fixed group"
    assert received["privacyFlag"] == 1
    assert sorted(received["parties"]) == sorted([trio.a.public_key, trio.c.public_key])
    status, _ = post_json(trio.a.q2t + "/storeraw", {"payload": "AA==", "privacyFlag": 1})
    assert status == 400  # options without recipients fix nothing


def test_keyed_raw_cannot_be_moved_to_another_group(trio: Trio) -> None:
    """Tessera-style /storeraw: the group is chosen at /sendsignedtx, then bound by the MAC."""
    status, stored = post_json(trio.a.q2t + "/storeraw", {"payload": b64encode(b"keyed")})
    assert status == 200
    raw_key = stored["key"]
    status, sent = post_json(
        trio.a.q2t + "/sendsignedtx", {"hash": raw_key, "to": [trio.b.public_key]}
    )
    assert status == 201, sent
    status, again = post_json(
        trio.a.q2t + "/sendsignedtx",
        {"hash": raw_key, "to": [trio.b.public_key, trio.c.public_key]},
    )
    assert status == 409, again  # its own manager never re-sends it to another group
    assert http("GET", f"{trio.c.q2t}/transaction/{path_hash(raw_key)}")[0] == 404
    status, raw, _ = http(
        "POST",
        trio.a.p2p + "/resend",
        json.dumps({"type": "INDIVIDUAL", "publicKey": trio.b.public_key, "key": raw_key}).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 200
    copy = decode_envelope(raw)
    assert isinstance(copy, EncodedPayload) and copy.keyed_terms is not None
    assert copy.header_binding is HeaderBinding.KEYED
    wider = ExecutionTerms.build(
        copy.sender_key, [*copy.group_keys, base64.b64decode(trio.c.public_key)]
    )
    forged = replace(copy, keyed_terms=wider)
    assert forged.hash == copy.hash
    status, body = _push(trio.b.p2p, forged.to_bytes(), {"c11n-key": raw_key})
    assert status == 409 and b"header MAC" in body, body
    assert _parties(trio.b, copy.hash) == sorted([trio.a.public_key, trio.b.public_key])


def test_hijacked_key_route_is_not_accepted(trio: Trio) -> None:
    """C's URL claims B's key; A asks C to prove it, C cannot, A keeps routing B to B."""
    claim = {
        "url": trio.c.p2p,
        "peers": [],
        "keys": [{"key": trio.b.public_key, "url": trio.c.p2p}],
    }
    status, _ = post_json(trio.a.p2p + "/partyinfo", claim)
    assert status == 200
    routes = json.loads(http("GET", trio.a.p2p + "/partyinfo")[1])["keys"]
    assert {"key": trio.b.public_key, "url": trio.b.p2p} in routes
    assert {"key": trio.b.public_key, "url": trio.c.p2p} not in routes


async def test_async_client(trio: Trio) -> None:
    async with Q2TClient(trio.a.q2t) as a, Q2TClient(trio.b.q2t) as b, Q2TClient(trio.c.q2t) as c:
        assert await a.upcheck()
        assert await a.keys() == [trio.a.public_key]
        sent = await a.send(b"via client", None, [trio.b.public_key], privacy_flag=0)
        assert sent.sender_key == trio.a.public_key
        received = await b.receive(sent.key)
        assert received is not None and received.payload == b"via client"
        assert received.managed_parties == [trio.b.public_key]
        assert await b.receive(sent.key, to=trio.b.public_key) is not None
        assert await c.receive(sent.key) is None
        assert await a.is_sender(sent.key) and not await b.is_sender(sent.key)
        assert sorted(await b.participants(sent.key)) == sorted(
            [trio.a.public_key, trio.b.public_key]
        )
        raw_hash = await a.store_raw(b"raw via client")
        signed = await a.send_signed_tx(raw_hash, [trio.c.public_key])
        assert signed.key == raw_hash
        assert (await c.receive(raw_hash)) is not None
        fixed_hash = await a.store_raw(b"fixed", None, to=[trio.c.public_key], privacy_flag=1)
        with pytest.raises(ManagerRequestFailed) as refused:
            await a.send_signed_tx(fixed_hash, [trio.b.public_key], privacy_flag=1)
        assert refused.value.status == 400
        assert (await a.send_signed_tx(fixed_hash, [trio.c.public_key], 1)).key == fixed_hash
        fixed = await c.receive(fixed_hash)
        assert fixed is not None and fixed.privacy_flag == 1
        assert await b.delete(sent.key) is True
        assert await b.delete(sent.key) is False
        with pytest.raises(ManagerRequestFailed) as failed:
            await a.send(b"x", None, [b64encode(generate_keypair().public)])
        assert failed.value.status == 404
    async with Q2TClient("http://127.0.0.1:1") as down:
        assert await down.upcheck() is False
        with pytest.raises(ManagerUnavailable):
            await down.receive(os.urandom(64))  # an outage is never "not a party"


def test_sync_client(trio: Trio) -> None:
    with SyncQ2TClient(trio.a.q2t) as a:
        sent = a.send(b"sync", None, [trio.b.public_key])
        assert a.receive(sent.key) is not None
        assert a.is_sender(sent.key)
        raw_hash = a.store_raw(b"sync raw", to=[trio.b.public_key])
        assert a.send_signed_tx(raw_hash, [trio.b.public_key]).key == raw_hash


def test_an_unexpected_store_fault_answers_500_and_the_writer_goes_on(trio: Trio) -> None:
    """A row that is TEXT where a BLOB belongs makes decoding raise TypeError inside the
    writer thread (no test hook: the fault is in the data). The push gets a 500, the
    log says why, and the next writes are served."""
    envelope = _envelope_for_b(trio)
    assert http("DELETE", f"{trio.b.q2t}/transaction/{envelope.hash.hex()}")[0] == 204
    database = sqlite3.connect(trio.b.db_path, timeout=10)
    try:
        database.execute(
            "INSERT INTO envelopes (hash, data) VALUES (?, ?)", (envelope.hash, "not a blob")
        )
        database.commit()
        log_before = len(trio.b.log_path.read_text())
        status, body = _push(trio.b.p2p, envelope.to_bytes())
        assert status == 500, body
        assert "TypeError" in trio.b.log_path.read_text()[log_before:]
        # The writer thread is alive: a new send to B commits on both sides.
        status, sent = trio.a.send(b"after the fault", [trio.b.public_key])
        assert status == 201, sent
        assert http("GET", f"{trio.b.q2t}/transaction/{path_hash(sent['key'])}")[0] == 200
    finally:
        database.execute("DELETE FROM envelopes WHERE hash = ?", (envelope.hash,))
        database.commit()
        database.close()
    status, _ = _push(trio.b.p2p, envelope.to_bytes())
    assert status == 201


async def test_several_transactions_are_read_in_one_request(trio: Trio) -> None:
    """``POST /transactions`` (a node reads a block's payloads at once): one answer per
    key, in order, null where the manager holds none for its keys; bad bodies are 400."""
    async with Q2TClient(trio.a.q2t) as a, Q2TClient(trio.b.q2t) as b:
        for_b = [await a.send(f"to b {i}".encode(), None, [trio.b.public_key]) for i in range(3)]
        for_c = await a.send(b"to c only", None, [trio.c.public_key])
        unknown = os.urandom(64)
        asked = [for_b[0].key, for_c.key, for_b[1].key, unknown, for_b[2].key]
        answers = await b.receive_many(asked)
        assert [None if r is None else r.payload for r in answers] == [
            b"to b 0",
            None,
            b"to b 1",
            None,
            b"to b 2",
        ]
        single = await b.receive(for_b[1].key)
        assert answers[2] == single
        assert await b.receive_many([]) == []
    for body, message in (
        ({"keys": "abc"}, "keys must be a list"),
        ({"keys": ["not base64!"]}, "keys"),
        ({"keys": [base64.b64encode(b"short").decode()]}, "64-byte"),
    ):
        status, raw = post_json(f"{trio.b.q2t}/transactions", body)
        assert status == 400, (body, raw)
        assert message in raw["error"], raw
    too_many = {"keys": [base64.b64encode(os.urandom(64)).decode()] * 1001}
    with pytest.raises(BadRequest, match="at most 1000 keys"):
        ReceiveManyRequest.from_json(too_many)
