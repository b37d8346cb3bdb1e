"""Disclosure through real manager processes: A sends to B, B discloses to a key outside
the network and it opens offline; C (no party) gets 404; bad input 400."""

from __future__ import annotations

import base64
import os

import pytest

from tests.tx_manager.conftest import Trio, post_json
from tx_manager.client import (
    DisclosedEnvelope,
    DisclosureSignature,
    ManagerRequestFailed,
    SyncQ2TClient,
)
from tx_manager.disclosure import (
    check_binding,
    open_disclosed,
    verify_disclosure_signature,
)
from tx_manager.enclave import generate_keypair
from tx_manager.payload import PrivacyMode

pytestmark = [pytest.mark.integration]


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def test_a_recipient_discloses_to_an_outside_key_and_it_opens(trio: Trio) -> None:
    a, b = trio.a, trio.b
    regulator = generate_keypair()  # no member of the network
    with SyncQ2TClient(a.q2t) as client_a:
        sent = client_a.send(b"private to a and b", None, [b.public_key])
    with SyncQ2TClient(b.q2t) as client_b:
        disclosed = client_b.disclose(sent.key, b64(regulator.public))
        assert isinstance(disclosed, DisclosedEnvelope)
        assert disclosed.discloser == base64.b64decode(b.public_key)
        assert client_b.identity()[b.public_key] == disclosed.signer
        opened = open_disclosed(regulator.private, sent.key, disclosed)
        assert opened.payload == b"private to a and b"
        assert opened.sender == base64.b64decode(a.public_key)
        assert opened.terms.privacy_mode is PrivacyMode.STANDARD
        assert set(opened.terms.group_keys) == {
            base64.b64decode(a.public_key),
            base64.b64decode(b.public_key),
        }
        assert check_binding(regulator.private, disclosed)

        digest = os.urandom(32)
        signature = client_b.sign_disclosure(digest, b.public_key)
        assert isinstance(signature, DisclosureSignature)
        assert signature.key == b.public_key and signature.signer == disclosed.signer
        assert verify_disclosure_signature(signature.signer, signature.signature, digest)

    # The raw JSON answer is exactly DisclosedEnvelope.to_json().
    status, body = post_json(
        b.q2t + "/disclose", {"hash": b64(sent.key), "recipient": b64(regulator.public)}
    )
    assert status == 200, body
    again = DisclosedEnvelope.from_json(body)
    assert again.to_json() == body
    assert open_disclosed(regulator.private, sent.key, again).payload == b"private to a and b"

    # The sender can disclose too.
    with SyncQ2TClient(a.q2t) as client_a:
        by_sender = client_a.disclose(sent.key, b64(regulator.public), a.public_key)
    assert open_disclosed(regulator.private, sent.key, by_sender).payload == b"private to a and b"


def test_a_non_party_cannot_disclose_and_bad_input_is_refused(trio: Trio) -> None:
    a, b, c = trio.a, trio.b, trio.c
    outside = b64(generate_keypair().public)
    with SyncQ2TClient(a.q2t) as client_a:
        sent = client_a.send(b"a and b only", None, [b.public_key])
    with SyncQ2TClient(c.q2t) as client_c, pytest.raises(ManagerRequestFailed) as refused:
        client_c.disclose(sent.key, outside)
    assert refused.value.status == 404

    url = b.q2t + "/disclose"
    good = {"hash": b64(sent.key), "recipient": outside}
    bad_bodies: list[tuple[object, str]] = [
        ({**good, "hash": b64(os.urandom(32))}, "hash must be a base64 64-byte hash"),
        ({**good, "hash": "not base64!"}, "hash is not valid base64"),
        ({**good, "recipient": "AAAA"}, "recipient must be a base64 32-byte key"),
        ({"hash": good["hash"]}, "recipient"),
        ({**good, "recipient": b64(bytes(32))}, "X25519 key"),
        ({**good, "from": a.public_key}, "not held by this manager"),
        ([], "must be a JSON object"),
    ]
    for body, message in bad_bodies:
        status, answer = post_json(url, body)
        assert status == 400, (body, answer)
        assert message in answer["error"], answer
    status, answer = post_json(url, {**good, "hash": b64(os.urandom(64))})
    assert status == 404, answer

    sign_url = b.q2t + "/disclosures/sign"
    for body in ({"digest": "0x1234"}, {"digest": os.urandom(32).hex()}, {}):
        status, answer = post_json(sign_url, body)
        assert status == 400, (body, answer)
    status, answer = post_json(sign_url, {"digest": "0x" + os.urandom(32).hex(), "from": outside})
    assert status == 400 and "not held by this manager" in answer["error"], answer


def test_a_keyed_storeraw_transaction_cannot_be_disclosed(trio: Trio) -> None:
    a, b = trio.a, trio.b
    status, stored = post_json(a.q2t + "/storeraw", {"payload": b64(b"tessera style")})
    assert status == 200, stored
    status, sent = post_json(a.q2t + "/sendsignedtx", {"hash": stored["key"], "to": [b.public_key]})
    assert status == 201, sent
    status, answer = post_json(
        b.q2t + "/disclose",
        {"hash": stored["key"], "recipient": b64(generate_keypair().public)},
    )
    assert status == 400, answer
    assert "cannot be disclosed with proof" in answer["error"]
