"""What must go wrong loudly, and leave nothing behind.

* An unknown recipient, or a recipient whose manager is down, fails the send: the error
  says why and names the key, and no public transaction is submitted (the sender's nonce
  does not move, the pool stays empty).
* A party whose own manager is down when a private transaction arrives must not take
  itself for a non-party (GoQuorum issue #1574): it stops importing, says why in its log,
  and once the manager is back it catches up to the same private state as the other party.
"""

from __future__ import annotations

import base64
import os
import time
from collections import Counter
from pathlib import Path

import pytest
from eth_abi import encode
from eth_utils import keccak

from tests.privacy.conftest import PrivateNet, artifact
from tests.support.node_process import wait_until

pytestmark = pytest.mark.integration


def deploy_data(value: int) -> str:
    return artifact("SimpleStorage")["bytecode"] + encode(["uint256"], [value]).hex()


def set_data(value: int) -> str:
    return "0x" + (keccak(text="set(uint256)")[:4] + encode(["uint256"], [value])).hex()


GET_DATA = "0x" + keccak(text="get()")[:4].hex()


def assert_nothing_submitted(net: PrivateNet, sender: str, nonce_before: int) -> None:
    assert net.nonce(sender) == nonce_before
    for name in net.names:
        assert net.txpool_empty(name), name


def test_unknown_recipient_fails_the_send_and_submits_nothing(net3: PrivateNet) -> None:
    net = net3
    stranger = base64.b64encode(os.urandom(32)).decode()
    nonce_before = net.nonce("node1")
    head_before = net.qnet.head_number("node1")
    error = net.error(
        "node1",
        "eth_sendTransaction",
        [{"from": net.address("node1"), "data": deploy_data(1), "privateFor": [stranger]}],
    )
    assert error["code"] == -32000
    assert stranger in error["message"], error
    # also with a known party beside the unknown one, and with gas given (no estimate)
    error = net.error(
        "node1",
        "eth_sendTransaction",
        [
            {
                "from": net.address("node1"),
                "data": deploy_data(1),
                "gas": "0x493e0",
                "privateFor": [net.key("node2"), stranger],
            }
        ],
    )
    assert stranger in error["message"], error
    assert_nothing_submitted(net, "node1", nonce_before)
    assert net.qnet.head_number("node1") == head_before

    # the offline path: /storeraw is local, distributing to the stranger fails
    w3 = net.w3("node1")
    raw = w3.quorum.sign_private_transaction(
        net.private_key("node1"),
        {"data": deploy_data(1), "gas": 300_000},
        manager_url=net.tm_url("node1"),
    )
    error = net.error(
        "node1", "eth_sendRawPrivateTransaction", ["0x" + raw.hex(), {"privateFor": [stranger]}]
    )
    assert stranger in error["message"], error
    assert_nothing_submitted(net, "node1", nonce_before)


def test_recipient_manager_down_at_send_time_fails_the_send(net3: PrivateNet) -> None:
    net = net3
    nonce_before = net.nonce("node1")
    net.qnet.stop("node3", only="tm")
    try:
        error = net.error(
            "node1",
            "eth_sendTransaction",
            [
                {
                    "from": net.address("node1"),
                    "data": deploy_data(1),
                    "privateFor": [net.key("node2"), net.key("node3")],
                }
            ],
        )
        assert error["code"] == -32000
        assert net.key("node3") in error["message"], error
        assert_nothing_submitted(net, "node1", nonce_before)
    finally:
        net.qnet.start("node3", only="tm")
    # with the manager back the same send goes through
    tx_hash = net.call(
        "node1",
        "eth_sendTransaction",
        [
            {
                "from": net.address("node1"),
                "data": deploy_data(2),
                "privateFor": [net.key("node2"), net.key("node3")],
            }
        ],
    )
    address = net.receipt("node1", tx_hash)["contractAddress"]
    net.wait_same_head()
    for name in net.names:
        assert int(net.call(name, "eth_call", [{"to": address, "data": GET_DATA}]), 16) == 2


def test_own_manager_down_at_send_time_fails_the_send(net3: PrivateNet) -> None:
    net = net3
    nonce_before = net.nonce("node2")
    net.qnet.stop("node2", only="tm")
    try:
        error = net.error(
            "node2",
            "eth_sendTransaction",
            [
                {
                    "from": net.address("node2"),
                    "data": deploy_data(1),
                    "gas": "0x493e0",
                    "privateFor": [net.key("node1")],
                }
            ],
        )
        assert error["code"] == -32000
        assert "transaction manager" in error["message"], error
        assert_nothing_submitted(net, "node2", nonce_before)
    finally:
        net.qnet.start("node2", only="tm")


def log_text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


@pytest.mark.slow
def test_party_manager_down_at_import_time_halts_the_party_until_it_is_back(
    net3: PrivateNet,
) -> None:
    net = net3
    sender = net.qnet.leader()
    party, bystander = [name for name in net.names if name != sender]
    account = net.address(sender)
    deployed = net.call(
        sender,
        "eth_sendTransaction",
        [{"from": account, "data": deploy_data(1), "privateFor": [net.key(party)]}],
    )
    address = net.receipt(sender, deployed)["contractAddress"]
    net.wait_same_head()

    # The party's node is away while the payload reaches its (running) manager; then the
    # manager goes down and the node comes back and must import the private transaction.
    net.qnet.stop(party, only="node")
    set_hash = net.call(
        sender,
        "eth_sendTransaction",
        [{"from": account, "to": address, "data": set_data(5), "privateFor": [net.key(party)]}],
    )
    included = int(net.receipt(sender, set_hash)["blockNumber"], 16)
    net.wait_same_head([sender, bystander])
    node_log = net.directory(party) / "node.log"
    log_before = len(log_text(node_log))
    net.qnet.stop(party, only="tm")
    try:
        net.qnet.start(party, only="node")
        # It says why it stops (the retries exhausted, the block not imported) ...
        wait_until(
            lambda: "did not answer for payload" in log_text(node_log)[log_before:],
            60,
            f"{party}'s node to log that its manager did not answer",
        )
        # ... and it did not import the block as a non-party would have.
        assert net.qnet.head_number(party) < included
        assert net.call(party, "eth_getTransactionReceipt", [set_hash]) is None
        assert net.call(party, "eth_call", [{"to": address, "data": GET_DATA}]) != "0x" + (
            "00" * 31 + "05"
        )
    finally:
        net.qnet.start(party, only="tm")

    net.wait_same_head(timeout=60)
    receipt = net.call(party, "eth_getTransactionReceipt", [set_hash])
    assert receipt["status"] == "0x1"
    assert len(receipt["logs"]) == 1
    for name in (sender, party):
        value = net.call(name, "eth_call", [{"to": address, "data": GET_DATA}, "latest"])
        assert int(value, 16) == 5, name
    assert net.call(bystander, "eth_getCode", [address, "latest"]) == "0x"
    roots = {
        name: net.call(name, "eth_storageRoot", [address, "latest"]) for name in (sender, party)
    }
    assert roots[sender] == roots[party]
    head = net.call(sender, "eth_blockNumber")
    group = net.call(sender, "eth_getContractPrivacyMetadata", [address])["privacyGroupId"]
    group_roots = {name: net.call(name, "debug_privateStateRoots", [head]) for name in net.names}
    assert group_roots[sender][group] == group_roots[party][group]
    assert group not in group_roots[bystander]


@pytest.mark.slow
def test_party_killed_mid_stream_comes_back_with_the_same_private_state(net3: PrivateNet) -> None:
    """kill -9 a party's node while private transactions for it keep coming; restarted on
    the same data directory it catches up to the same private state as the other party."""
    net = net3
    sender = net.qnet.leader()
    party, bystander = [name for name in net.names if name != sender]
    account = net.address(sender)
    deployed = net.call(
        sender,
        "eth_sendTransaction",
        [{"from": account, "data": deploy_data(0), "privateFor": [net.key(party)]}],
    )
    address = net.receipt(sender, deployed)["contractAddress"]

    def write(value: int) -> str:
        return str(
            net.call(
                sender,
                "eth_sendTransaction",
                [
                    {
                        "from": account,
                        "to": address,
                        "data": set_data(value),
                        "gas": "0x186a0",
                        "privateFor": [net.key(party)],
                    }
                ],
            )
        )

    for value in range(1, 11):
        write(value)
    net.qnet.stop(party, kill=True, only="node")
    try:
        for value in range(11, 21):
            last = write(value)
        net.receipt(sender, last)
    finally:
        net.qnet.start(party, only="node")
    net.wait_same_head(timeout=60)
    assert int(net.call(party, "eth_call", [{"to": address, "data": GET_DATA}]), 16) == 20
    assert net.call(party, "eth_getTransactionReceipt", [last])["status"] == "0x1"
    assert net.call(party, "eth_storageRoot", [address]) == net.call(
        sender, "eth_storageRoot", [address]
    )
    head = net.call(sender, "eth_blockNumber")
    group = net.call(sender, "eth_getContractPrivacyMetadata", [address])["privacyGroupId"]
    roots = {name: net.call(name, "debug_privateStateRoots", [head]) for name in (sender, party)}
    assert roots[sender][group] == roots[party][group]
    assert net.call(bystander, "eth_getCode", [address]) == "0x"


@pytest.mark.slow
def test_leader_manager_down_does_not_stop_public_transactions(net3: PrivateNet) -> None:
    net = net3
    leader = net.qnet.leader()
    sender, recipient = [name for name in net.names if name != leader]
    net.qnet.stop(leader, only="tm")
    private_tx = None
    try:
        private_tx = net.call(
            sender,
            "eth_sendTransaction",
            [
                {
                    "from": net.address(sender),
                    "data": deploy_data(1),
                    "gas": "0x493e0",
                    "privateFor": [net.key(recipient)],
                }
            ],
        )
        raw, transfer = net.qnet.sign_transfer(net.private_key(recipient), net.nonce(recipient))
        net.call(recipient, "eth_sendRawTransaction", [raw])
        # The leader leaves the private transaction it cannot resolve for later and
        # keeps minting public ones.
        net.receipt(recipient, transfer, timeout=15)
        assert net.call(sender, "eth_getTransactionReceipt", [private_tx]) is None
    finally:
        net.qnet.start(leader, only="tm")
        net.receipt(recipient, transfer, timeout=60)  # all is well once it is back
        net.wait_same_head(timeout=60)
    assert private_tx is not None
    receipts = [net.receipt(name, private_tx, timeout=60) for name in (sender, recipient)]
    assert [r["status"] for r in receipts] == ["0x1", "0x1"]


@pytest.mark.slow
def test_a_leader_whose_manager_was_killed_under_private_load_logs_a_few_lines_a_second(
    net3: PrivateNet,
) -> None:
    """Issue 27 saw 19,478 lines in 8 s: the minter retried at once, logging each time."""
    net = net3
    leader = net.qnet.leader()
    sender, recipient = [name for name in net.names if name != leader]
    log = net.directory(leader) / "node.log"
    net.qnet.stop(leader, kill=True, only="tm")
    logged_before = log.stat().st_size
    sent: list[str] = []
    try:
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            sent.append(
                net.call(
                    sender,
                    "eth_sendTransaction",
                    [
                        {
                            "from": net.address(sender),
                            "data": deploy_data(len(sent)),
                            "gas": "0x493e0",
                            "privateFor": [net.key(recipient)],
                        }
                    ],
                )
            )
            time.sleep(0.1)
        with log.open("rb") as file:
            file.seek(logged_before)
            outage = file.read().decode(errors="replace")
    finally:
        net.qnet.start(leader, only="tm")
    # One line per second of the log at most a handful (text format: the time first).
    per_second = Counter(line[:19] for line in outage.splitlines() if line[:2] == "20")
    assert per_second, "the leader logged nothing about its manager"
    assert max(per_second.values()) <= 5, per_second.most_common(3)
    assert len(sent) > 20
    for tx_hash in sent:  # all is mined once the manager is back
        for name in (sender, recipient):
            assert net.receipt(name, tx_hash, timeout=90)["status"] == "0x1"
