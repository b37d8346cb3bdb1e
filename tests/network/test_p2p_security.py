"""The node-to-node port of a 3-node network: outsiders are refused (403), forged or
altered requests are refused (401), and bad input from a legitimate peer is refused
with a 4xx and a message, while every node keeps serving and mining."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import pytest
import rlp
from eth_keys import keys

from quorum_node.p2p.identity import NodeKey, _request_digest
from quorum_node.p2p.wire import MAX_BLOCKS_PER_REQUEST, encode_list
from tests.network.harness import P2PReply, QnetNetwork

pytestmark = pytest.mark.integration

TARGET = "node1"


def _signed_transfer(network: QnetNetwork, name: str, nonce_offset: int = 0) -> tuple[str, str]:
    account = network.account(name)
    nonce = network.nonce(TARGET, account["address"]) + nonce_offset
    return network.sign_transfer(account["private_key"], nonce)


def test_outsider_cannot_forward_or_sync(network3: QnetNetwork) -> None:
    network = network3
    outsider = NodeKey(os.urandom(32))
    # From an account of its own (gas is free): valid, and mined only if forwarded.
    raw, tx_hash = network.sign_transfer("0x" + os.urandom(32).hex(), 0, value=0)
    body = encode_list([bytes.fromhex(raw[2:])])
    for name in network.names:
        reply = network.p2p_request(name, "POST", "/p2p/transactions", body, signer=outsider)
        assert reply.status == 403, reply
        assert "permissioned" in reply.text
    for method, path, payload in (
        ("GET", "/p2p/status", b""),
        ("GET", "/p2p/blocks?from=0&count=1", b""),
        ("POST", "/p2p/blocks", encode_list([b"\x01"])),
    ):
        reply = network.p2p_request(TARGET, method, path, payload, signer=outsider)
        assert reply.status == 403, (path, reply)

    # Blocks go on (a member's transaction is mined); the outsider's never is.
    network.everyone_mines()
    for name in network.names:
        assert network.call(name, "eth_getTransactionByHash", [tx_hash]) is None
        assert network.call(name, "eth_getTransactionReceipt", [tx_hash]) is None


def _forgeries(network: QnetNetwork) -> dict[str, Callable[[], P2PReply]]:
    member = network.node_key("node2")
    other_member_id = network.node_key("node3").node_id
    outsider = NodeKey(os.urandom(32))
    raw, _ = _signed_transfer(network, "node2")
    body = encode_list([bytes.fromhex(raw[2:])])
    path = "/p2p/transactions"

    def send(headers: dict[str, str], payload: bytes = body, to: str = path) -> P2PReply:
        return network.p2p_request(TARGET, "POST", to, payload, headers=headers)

    def stale(seconds: int) -> dict[str, str]:
        timestamp = str(int(time.time()) - seconds)
        digest = _request_digest("POST", path, timestamp, body)
        signature = keys.PrivateKey(
            bytes.fromhex((network.directory / "node2" / "data" / "nodekey").read_text())
        ).sign_msg_hash(digest)
        return {
            "X-Quorum-Node": member.node_id,
            "X-Quorum-Timestamp": timestamp,
            "X-Quorum-Signature": signature.to_bytes().hex(),
        }

    signed = member.sign_request("POST", path, body)
    return {
        "outsider signs, claims a member": lambda: send(
            {**outsider.sign_request("POST", path, body), "X-Quorum-Node": member.node_id}
        ),
        "member signs, claims another member": lambda: send(
            {**signed, "X-Quorum-Node": other_member_id}
        ),
        "body altered after signing": lambda: send(signed, body + b"\x00"),
        "signature for another path": lambda: send(
            member.sign_request("POST", "/p2p/blocks", body)
        ),
        "signature for another method": lambda: send(member.sign_request("GET", path, body)),
        "stale timestamp": lambda: send(stale(3600)),
        "timestamp from the future": lambda: send(stale(-3600)),
        "timestamp altered after signing": lambda: send(
            {**signed, "X-Quorum-Timestamp": str(int(signed["X-Quorum-Timestamp"]) - 1)}
        ),
        "no headers": lambda: send({}),
        "no signature": lambda: send({k: v for k, v in signed.items() if "Signature" not in k}),
        "signature not hex": lambda: send({**signed, "X-Quorum-Signature": "zz" * 65}),
        "signature too short": lambda: send({**signed, "X-Quorum-Signature": "ab" * 10}),
        "timestamp not a number": lambda: send({**signed, "X-Quorum-Timestamp": "yesterday"}),
        "status unsigned": lambda: network.p2p_request(TARGET, "GET", "/p2p/status"),
        "blocks unsigned": lambda: network.p2p_request(TARGET, "GET", "/p2p/blocks?from=0&count=1"),
    }


def test_forged_requests_are_refused(network3: QnetNetwork) -> None:
    network = network3
    for what, attempt in _forgeries(network).items():
        reply = attempt()
        assert reply.status == 401, (what, reply)
        assert reply.text.strip(), what
    # The real member's request, as signed, is accepted.
    raw, tx_hash = _signed_transfer(network, "node2")
    body = encode_list([bytes.fromhex(raw[2:])])
    reply = network.p2p_request(
        TARGET, "POST", "/p2p/transactions", body, signer=network.node_key("node2")
    )
    assert reply.status == 200, reply
    network.wait_receipt(TARGET, tx_hash)


def _bad_inputs(network: QnetNetwork) -> list[tuple[str, str, str, bytes]]:
    """(what, method, path, body) a legitimate peer might send by mistake or malice."""
    valid_raw, _ = _signed_transfer(network, "node3")
    return [
        ("transactions: not RLP", "POST", "/p2p/transactions", b"\xff\x00garbage"),
        ("transactions: empty body", "POST", "/p2p/transactions", b""),
        ("transactions: a string, not a list", "POST", "/p2p/transactions", rlp.encode(b"abc")),
        (
            "transactions: nested lists",
            "POST",
            "/p2p/transactions",
            rlp.encode([[b"a", [b"b"]], b"c"]),
        ),
        (
            "transactions: bytes that are no transaction",
            "POST",
            "/p2p/transactions",
            encode_list([b"\x01\x02\x03", os.urandom(200)]),
        ),
        (
            "transactions: truncated transaction",
            "POST",
            "/p2p/transactions",
            encode_list([bytes.fromhex(valid_raw[2:])[:-5]]),
        ),
        ("blocks: not RLP", "POST", "/p2p/blocks", b"\xff\xfe"),
        ("blocks: empty list", "POST", "/p2p/blocks", encode_list([])),
        ("blocks: two items", "POST", "/p2p/blocks", encode_list([b"a", b"b"])),
        ("blocks: nested", "POST", "/p2p/blocks", rlp.encode([[b"a"]])),
        ("blocks: does not decode", "POST", "/p2p/blocks", encode_list([os.urandom(300)])),
        (
            "blocks: a transaction, not a block",
            "POST",
            "/p2p/blocks",
            encode_list([bytes.fromhex(valid_raw[2:])]),
        ),
        (
            "blocks: header fields of the wrong type",
            "POST",
            "/p2p/blocks",
            encode_list([rlp.encode([[b"x"] * 3, [], []])]),
        ),
        ("get blocks: from=-1", "GET", "/p2p/blocks?from=-1&count=1", b""),
        ("get blocks: no from", "GET", "/p2p/blocks?count=1", b""),
        ("get blocks: from not a number", "GET", "/p2p/blocks?from=abc&count=1", b""),
        ("get blocks: count=0", "GET", "/p2p/blocks?from=0&count=0", b""),
        ("get blocks: count=-5", "GET", "/p2p/blocks?from=0&count=-5", b""),
        (
            "get blocks: count too big",
            "GET",
            f"/p2p/blocks?from=0&count={MAX_BLOCKS_PER_REQUEST + 1}",
            b"",
        ),
        ("get blocks: count huge", "GET", "/p2p/blocks?from=0&count=" + "9" * 40, b""),
        ("get blocks: from a float", "GET", "/p2p/blocks?from=1.5&count=1", b""),
    ]


def test_bad_input_from_a_member_is_refused_and_nodes_keep_serving(
    network3: QnetNetwork,
) -> None:
    network = network3
    member = network.node_key("node2")
    head_before = network.head_number(TARGET)
    for what, method, path, body in _bad_inputs(network):
        reply = network.p2p_request(TARGET, method, path, body, signer=member)
        assert 400 <= reply.status < 500, (what, reply)
        assert reply.text.strip(), f"{what}: refusal without a message"
        # and the node still answers its peers
        assert network.p2p_request(TARGET, "GET", "/p2p/status", signer=member).status == 200

    # Far past the head is not an error: there are no such blocks.
    reply = network.p2p_request(
        TARGET, "GET", "/p2p/blocks?from=" + "9" * 30 + "&count=2", signer=member
    )
    assert reply.status == 200, reply
    assert rlp.decode(reply.body) == []
    reply = network.p2p_request(TARGET, "GET", "/p2p/blocks?from=0&count=1", signer=member)
    assert reply.status == 200 and len(rlp.decode(reply.body)) == 1

    for method, path in (
        ("PUT", "/p2p/status"),
        ("GET", "/p2p/nothing"),
        ("DELETE", "/p2p/blocks"),
    ):
        reply = network.p2p_request(TARGET, method, path, signer=member)
        assert 400 <= reply.status < 500, (method, path, reply)

    assert network.head_number(TARGET) >= head_before
    network.everyone_mines()
