"""Bad input on every endpoint: a 4xx with a JSON message, and the manager keeps serving."""

from __future__ import annotations

import json
import os

import pytest

from tests.tx_manager.conftest import Trio, http
from tx_manager.payload import b64encode

pytestmark = pytest.mark.integration

JSON = {"Content-Type": "application/json"}
BINARY = {"Content-Type": "application/octet-stream"}
KEY = b64encode(os.urandom(32))
HASH = b64encode(os.urandom(64)).replace("/", "%2F").replace("+", "%2B")


def j(obj: object) -> bytes:
    return json.dumps(obj).encode()


# (api, method, path, body, headers, expected status)
CASES = [
    ("q2t", "POST", "/send", b"{not json", JSON, 400),
    ("q2t", "POST", "/send", j([1, 2]), JSON, 400),
    ("q2t", "POST", "/send", j({"to": []}), JSON, 400),
    ("q2t", "POST", "/send", j({"payload": "%%%", "to": []}), JSON, 400),
    ("q2t", "POST", "/send", j({"payload": 12, "to": []}), JSON, 400),
    ("q2t", "POST", "/send", j({"payload": "AA==", "to": "notalist"}), JSON, 400),
    ("q2t", "POST", "/send", j({"payload": "AA==", "to": ["%%"]}), JSON, 400),
    ("q2t", "POST", "/send", j({"payload": "AA==", "to": ["AAAA"]}), JSON, 400),
    ("q2t", "POST", "/send", j({"payload": "AA==", "to": [], "from": KEY}), JSON, 400),
    ("q2t", "POST", "/send", j({"payload": "AA==", "to": [], "privacyFlag": 7}), JSON, 400),
    ("q2t", "POST", "/send", j({"payload": "AA==", "to": [], "privacyFlag": "1"}), JSON, 400),
    ("q2t", "POST", "/send", j({"payload": "AA==", "to": [], "privacyFlag": 2}), JSON, 400),
    ("q2t", "POST", "/send", j({"payload": "AA==", "to": [], "privacyFlag": 3}), JSON, 400),
    ("q2t", "POST", "/send", j({"payload": "AA==", "to": []}), {"Content-Type": "text/plain"}, 415),
    ("q2t", "POST", "/send", j({"payload": "A" * 100_000, "to": []}), JSON, 413),
    ("q2t", "POST", "/storeraw", j({}), JSON, 400),
    ("q2t", "POST", "/storeraw", j({"payload": "!!"}), JSON, 400),
    ("q2t", "POST", "/storeraw", b"payload", BINARY, 415),
    ("q2t", "POST", "/sendsignedtx", j({"to": []}), JSON, 400),
    ("q2t", "POST", "/sendsignedtx", j({"hash": "AAAA", "to": []}), JSON, 400),
    ("q2t", "POST", "/sendsignedtx", j({"hash": b64encode(os.urandom(64)), "to": 5}), JSON, 400),
    ("q2t", "GET", "/transaction/not-a-hash", None, {}, 400),
    ("q2t", "GET", f"/transaction/{HASH}?to=%25%25", None, {}, 400),
    ("q2t", "GET", f"/transaction/{HASH}", None, {}, 404),
    ("q2t", "GET", "/transaction/abc/participants", None, {}, 400),
    ("q2t", "GET", f"/transaction/{HASH}/participants", None, {}, 404),
    ("q2t", "GET", "/transaction/abc/isSender", None, {}, 400),
    ("q2t", "GET", f"/transaction/{HASH}/isSender", None, {}, 404),
    ("q2t", "GET", "/receiveraw", None, {}, 400),
    ("q2t", "GET", "/receiveraw", None, {"c11n-key": "zz"}, 400),
    ("q2t", "GET", "/receiveraw", None, {"c11n-key": b64encode(os.urandom(64))}, 404),
    ("q2t", "DELETE", "/transaction/xyz", None, {}, 400),
    ("q2t", "GET", "/no-such-path", None, {}, 404),
    ("q2t", "PUT", "/send", j({}), JSON, 405),
    ("p2p", "POST", "/push", b"garbage", BINARY, 400),
    ("p2p", "POST", "/push", b"", BINARY, 400),
    ("p2p", "POST", "/push", b"garbage", JSON, 415),
    ("p2p", "POST", "/push", b"\x00" * 100_000, BINARY, 413),
    ("p2p", "POST", "/pushBatch", b"QTMB\x01garbage", BINARY, 400),
    ("p2p", "POST", "/partyinfo", b"[]", JSON, 400),
    ("p2p", "POST", "/partyinfo", j({"peers": [], "keys": []}), JSON, 400),
    ("p2p", "POST", "/partyinfo", j({"url": "ftp://x", "peers": [], "keys": []}), JSON, 400),
    ("p2p", "POST", "/partyinfo", j({"url": "http://x", "peers": [{}], "keys": []}), JSON, 400),
    ("p2p", "POST", "/partyinfo/validate", j({"from": KEY}), JSON, 400),
    (
        "p2p",
        "POST",
        "/partyinfo/validate",
        j({"from": KEY, "to": KEY, "nonce": b64encode(b"n" * 24), "box": "AA=="}),
        JSON,
        404,
    ),
    ("p2p", "POST", "/resend", j({"type": "SOME", "publicKey": KEY}), JSON, 400),
    ("p2p", "POST", "/resend", j({"type": "INDIVIDUAL", "publicKey": KEY}), JSON, 400),
    ("p2p", "POST", "/resend", j({"type": "ALL", "publicKey": KEY}), JSON, 404),
    ("p2p", "POST", "/resend", j({"type": "ALL"}), JSON, 400),
]


@pytest.mark.parametrize(("api", "method", "path", "body", "headers", "expected"), CASES)
def test_bad_request_gets_4xx_with_message(
    trio: Trio,
    api: str,
    method: str,
    path: str,
    body: bytes | None,
    headers: dict[str, str],
    expected: int,
) -> None:
    base = trio.a.q2t if api == "q2t" else trio.a.p2p
    status, raw, response_headers = http(method, base + path, body, headers)
    assert status == expected, raw
    if status not in (404, 405) or "json" in response_headers.get("Content-Type", ""):
        message = json.loads(raw)["error"]
        assert isinstance(message, str) and message
    assert http("GET", trio.a.q2t + "/upcheck")[0] == 200


def test_challenge_with_a_bad_box_is_refused(trio: Trio) -> None:
    body = j(
        {
            "from": KEY,
            "to": trio.a.public_key,
            "nonce": b64encode(b"n" * 24),
            "box": b64encode(os.urandom(48)),
        }
    )
    status, raw, _ = http("POST", trio.a.p2p + "/partyinfo/validate", body, JSON)
    assert status == 422 and json.loads(raw)["error"]
