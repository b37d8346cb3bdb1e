"""Group changes through real processes (docs/group-changes.md): a party joins a token
group with its state handed over and proven against the old members' signed roots
(scopes ``state`` and ``full``), a party leaves, changes are cancelled, bad votes and a
wrong hand-over are refused, and transactions sent around the change land on the right
side of H. One 4-node network: node1 and node2 hold the token; node3 joins; node4 is
never a party."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_abi import encode
from eth_utils import keccak
from web3 import Web3

from quorum_node.disclosure.verify import verify_bundle
from quorum_node.privacy.group_change import GROUP_CHANGE_ADDRESS
from tests.privacy.conftest import PrivateNet, artifact, private_network
from tests.privacy.test_audit import audit_entry, group_id
from tests.support.waiting import wait_until
from tx_manager.keyfile import read_keypair

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

SUPPLY = 1_000_000


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateNet]:
    with private_network(tmp_path_factory.mktemp("group-changes"), 4) as network:
        yield network


def send(net: PrivateNet, name: str, parties: list[str], request: dict[str, Any]) -> dict[str, Any]:
    """Send privately to ``parties``; the sender's receipt, once every node has the block
    (so that what any node reads next reflects it)."""
    others = [net.key(n) for n in parties if n != name]
    tx_hash = net.call(
        name,
        "eth_sendTransaction",
        [{"from": net.address(name), "privateFor": others, "gas": hex(1_000_000), **request}],
    )
    receipt = net.receipt(name, tx_hash)
    for other in net.names:
        net.receipt(other, tx_hash)
    return receipt


def deploy_token(net: PrivateNet, name: str, parties: list[str]) -> str:
    build = artifact("Token")
    data = (
        build["bytecode"] + encode(["string", "string", "uint256"], ["Bond", "BND", SUPPLY]).hex()
    )
    receipt = send(net, name, parties, {"data": data})
    assert receipt["status"] == "0x1"
    return str(receipt["contractAddress"])


def transfer_data(to: str, value: int) -> str:
    return (
        "0x"
        + (
            keccak(text="transfer(address,uint256)")[:4]
            + encode(["address", "uint256"], [to, value])
        ).hex()
    )


def balance(net: PrivateNet, name: str, token: str, holder: str, block: str = "latest") -> int:
    data = "0x" + (keccak(text="balanceOf(address)")[:4] + encode(["address"], [holder])).hex()
    answer = net.call(name, "eth_call", [{"to": token, "data": data}, block])
    return int(answer, 16) if answer not in ("0x", "") else -1


def refused_send(net: PrivateNet, name: str, parties: list[str], token: str) -> dict[str, Any]:
    """The error a transfer to ``token`` from ``name`` to the party set ``parties`` gets."""
    others = [net.key(n) for n in parties if n != name]
    request = {
        "from": net.address(name),
        "to": token,
        "data": transfer_data(net.address(name), 1),
        "privateFor": others,
        "gas": hex(200_000),
    }
    return net.error(name, "eth_sendTransaction", [request])


def change_status(net: PrivateNet, name: str, change_id: str) -> dict[str, Any] | None:
    result: dict[str, Any] | None = net.call(name, "quorum_getGroupChange", [change_id])
    return result


def vote(net: PrivateNet, name: str, change_id: str, approve: bool = True) -> dict[str, Any]:
    """``name`` votes, once its node holds the change (its proposal's block imported)."""
    wait_status(net, name, change_id, "voting")
    tx_hash = net.call(
        name, "quorumExtension_approveExtension", [change_id, approve, {"from": net.address(name)}]
    )
    return net.receipt(name, tx_hash)


def wait_status(net: PrivateNet, name: str, change_id: str, status: str) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        found = change_status(net, name, change_id)
        return found if found is not None and found["status"] == status else None

    return wait_until(reached, 30, f"change {change_id} {status} on {name}")


def wait_accepted(net: PrivateNet, name: str, change_id: str) -> dict[str, Any]:
    def accepted() -> dict[str, Any] | None:
        found = change_status(net, name, change_id)
        return found if found and found["handover"].get("state") == "accepted" else None

    try:
        return wait_until(accepted, 60, f"{name} accepts the hand-over of {change_id}")
    except AssertionError:
        statuses = {other: change_status(net, other, change_id) for other in net.names}
        raise AssertionError(f"not accepted; the parties' views: {statuses}") from None


def test_a_custodian_joins_the_token_group_with_its_state_proven(net: PrivateNet) -> None:
    token = deploy_token(net, "node1", ["node1", "node2"])
    send(
        net,
        "node1",
        ["node1", "node2"],
        {"to": token, "data": transfer_data(net.address("node2"), 250)},
    )
    old_group = group_id(net, "node1", "node2")
    new_group = group_id(net, "node1", "node2", "node3")
    assert balance(net, "node3", token, net.address("node2")) == -1  # not a party yet

    change_id = net.call(
        "node1",
        "quorumExtension_extendContract",
        [token, net.key("node3"), None, {"from": net.address("node1")}],
    )
    proposed = wait_status(net, "node3", change_id, "voting")
    assert proposed["groupId"] == old_group and proposed["newGroupId"] == new_group
    assert sorted(proposed["waitingFor"]) == sorted([net.key("node2"), net.key("node3")])
    assert net.call("node4", "quorum_getGroupChange", [change_id]) is None
    wait_status(net, "node2", change_id, "voting")
    assert net.call("node2", "quorumExtension_getExtensionStatus", [change_id]) == "ACTIVE"
    active = net.call("node3", "quorumExtension_activeExtensionContracts")
    assert [entry["managementContractAddress"] for entry in active] == [change_id]

    # A second approval by the same party is refused, at the node and on chain alike.
    assert vote(net, "node2", change_id)["status"] == "0x1"
    error = net.error(
        "node2",
        "quorumExtension_approveExtension",
        [change_id, True, {"from": net.address("node2")}],
    )
    assert "already approved" in error["message"]

    activation = vote(net, "node3", change_id)
    height = int(activation["blockNumber"], 16)
    for name in ("node1", "node2", "node3"):
        status = wait_status(net, name, change_id, "active")
        assert status["activationBlock"] == height
    assert net.call("node1", "quorumExtension_getExtensionStatus", [change_id]) == "DONE"

    accepted = wait_accepted(net, "node3", change_id)
    assert sorted(accepted["handover"]["receivedFrom"]) == sorted(
        [net.key("node1"), net.key("node2")]
    )
    for holder in ("node1", "node2"):
        expected = balance(net, "node1", token, net.address(holder))
        assert balance(net, "node3", token, net.address(holder)) == expected
    assert balance(net, "node3", token, net.address("node2")) == 250
    assert balance(net, "node4", token, net.address("node2")) == -1

    # Settle in the new group: all three execute it; the old party set is refused.
    moved = send(
        net,
        "node3",
        ["node1", "node2", "node3"],
        {"to": token, "data": transfer_data(net.address("node3"), 0)},
    )
    assert moved["status"] == "0x1"
    settled = send(
        net,
        "node1",
        ["node1", "node2", "node3"],
        {"to": token, "data": transfer_data(net.address("node3"), 40)},
    )
    assert settled["status"] == "0x1"
    for name in ("node1", "node2", "node3"):
        assert balance(net, name, token, net.address("node3")) == 40
    refused = refused_send(net, "node1", ["node1", "node2"], token)
    assert new_group[2:] in refused["message"] and net.key("node3") in refused["message"]
    # Before H, the contract's state is G's: readable as it was.
    assert balance(net, "node1", token, net.address("node2"), hex(height)) == 250

    # The three members' roots of the new group agree at every later commitment.
    def agreed() -> int | None:
        entries = [audit_entry(net, name, new_group) for name in ("node1", "node2", "node3")]
        if any(entry is None or entry["agreedHeight"] is None for entry in entries):
            return None
        settled_at = int(settled["blockNumber"], 16)
        return min(entry["agreedHeight"] for entry in entries if entry) >= settled_at or None

    wait_until(agreed, 40, "all three members agree on the new group's root after the transfer")
    for name in ("node1", "node2", "node3"):
        entry = audit_entry(net, name, new_group)
        assert entry is not None and entry["alarms"] == [], entry


def test_cancel_before_activation_and_votes_from_outsiders_are_refused(net: PrivateNet) -> None:
    token = deploy_token(net, "node2", ["node2", "node4"])
    proposed = net.w3("node2").quorum.propose_group_change(
        net.address("node2"), contract=token, add=[net.key("node1")]
    )
    change_id = "0x" + bytes(proposed).hex()
    wait_status(net, "node1", change_id, "voting")
    assert net.w3("node1").quorum.get_extension_status(change_id) == "ACTIVE"
    listed = net.w3("node1").quorum.active_extension_contracts()
    assert change_id in [entry["changeId"] for entry in listed]
    # A second open change of the same group is refused at the proposer's node.
    error = net.error(
        "node4",
        "quorum_proposeGroupChange",
        [{"contract": token, "add": [net.key("node3")]}, {"from": net.address("node4")}],
    )
    assert change_id in error["message"] and "open" in error["message"]
    # node3 is no party: its node does not know the change, and refuses to vote on it.
    error = net.error(
        "node3",
        "quorumExtension_approveExtension",
        [change_id, True, {"from": net.address("node3")}],
    )
    assert "not known to this node" in error["message"]
    # A vote node3 sends anyway, crafted, is refused by every party when it executes.
    crafted = json.dumps(
        {
            "type": "quorum-py/group-change/v1",
            "action": "vote",
            "changeId": change_id,
            "approve": True,
        }
    ).encode()
    tx_hash = net.call(
        "node3",
        "eth_sendTransaction",
        [
            {
                "from": net.address("node3"),
                "to": "0x" + GROUP_CHANGE_ADDRESS.hex(),
                "data": "0x" + crafted.hex(),
                "privateFor": [net.key("node1"), net.key("node2"), net.key("node4")],
                "gas": hex(100_000),
            }
        ],
    )
    assert net.receipt("node2", tx_hash)["status"] == "0x0"
    assert net.key("node3") not in change_status(net, "node2", change_id)["approvals"]

    wait_status(net, "node4", change_id, "voting")
    cancelled = net.w3("node4").quorum.cancel_extension(change_id, net.address("node4"))
    assert net.receipt("node4", "0x" + bytes(cancelled).hex())["status"] == "0x1"
    for name in ("node1", "node2", "node4"):
        status = wait_status(net, name, change_id, "cancelled")
        assert net.key("node4") in status["reason"]
    assert net.w3("node2").quorum.get_extension_status(change_id) == "DONE"
    assert change_id not in [
        e["changeId"] for e in net.w3("node2").quorum.active_extension_contracts()
    ]
    assert change_id in [e["changeId"] for e in net.w3("node2").quorum.group_changes()]
    error = net.error(
        "node1",
        "quorumExtension_approveExtension",
        [change_id, True, {"from": net.address("node1")}],
    )
    assert "cancelled" in error["message"]
    # The group is unchanged: node2 and node4 still transact in it.
    assert (
        send(
            net,
            "node2",
            ["node2", "node4"],
            {"to": token, "data": transfer_data(net.address("node4"), 5)},
        )["status"]
        == "0x1"
    )
    assert balance(net, "node4", token, net.address("node4")) == 5


def test_a_party_leaves_and_a_party_joins_with_the_full_history(net: PrivateNet) -> None:
    """G = {node2, node3, node4} becomes {node1, node2, node4}: node3 leaves, node1 joins
    with scope ``full`` and receives G's history as a disclosure bundle it can verify."""
    members = ["node2", "node3", "node4"]
    token = deploy_token(net, "node2", members)
    send(net, "node2", members, {"to": token, "data": transfer_data(net.address("node3"), 70)})
    change_id = net.call(
        "node2",
        "quorum_proposeGroupChange",
        [
            {
                "contract": token,
                "add": [net.key("node1")],
                "remove": [net.key("node3")],
                "scope": "full",
            },
            {"from": net.address("node2")},
        ],
    )
    wait_status(net, "node1", change_id, "voting")
    for name in ("node3", "node4"):
        assert vote(net, name, change_id)["status"] == "0x1"
    height = int(vote(net, "node1", change_id)["blockNumber"], 16)
    assert wait_status(net, "node3", change_id, "active")["role"] == "removed"

    accepted = wait_accepted(net, "node1", change_id)
    history_file = Path(accepted["handover"]["history"])
    assert history_file.stat().st_mode & 0o777 == 0o600  # the group's private history
    history = json.loads(history_file.read_text())
    tm = net.directory("node1") / "tm"
    pair = read_keypair(tm / "node1.pub", tm / "node1.key", None)
    report = verify_bundle(history, pair.private, net.qnet.url("node4"))
    assert report.ok, report.to_json()
    assert history["height"] == height and len(history["transactions"]) == 2
    assert balance(net, "node1", token, net.address("node3")) == 70

    after = send(
        net,
        "node2",
        ["node1", "node2", "node4"],
        {"to": token, "data": transfer_data(net.address("node4"), 9)},
    )
    assert after["status"] == "0x1"
    for name in ("node1", "node2", "node4"):
        assert balance(net, name, token, net.address("node4")) == 9
    # The removed party sees nothing after H, and keeps G as it was at H.
    assert net.call("node3", "eth_getTransactionReceipt", [after["transactionHash"]])["logs"] == []
    assert balance(net, "node3", token, net.address("node4")) == -1
    assert balance(net, "node3", token, net.address("node3"), hex(height)) == 70
    refused = refused_send(net, "node3", ["node2", "node3", "node4"], token)
    assert group_id(net, "node1", "node2", "node4")[2:] in refused["message"]


def own_commitment(net: PrivateNet, name: str, group: str, height: int) -> dict[str, Any] | None:
    with urllib.request.urlopen(f"{net.tm_url(name)}/commitments?after=0&limit=1000") as answer:
        page = json.loads(answer.read())
    for item in page["commitments"]:
        signed = item["commitment"]
        if item["own"] and signed["groupId"] == group and signed["blockNumber"] == height:
            return dict(signed)
    return None


def test_a_wrong_hand_over_is_refused_and_a_killed_member_catches_up(net: PrivateNet) -> None:
    """G = {node1, node3} gains node4. node1's node is killed (-9) before activation, so
    node4 waits for node1's signed root; meanwhile node3 hands over an empty state under
    its genuine commitment. node4 refuses it with evidence; once node1 is back and has
    caught up, node4 accepts the state the old members agree on."""
    token = deploy_token(net, "node3", ["node1", "node3"])
    change_id = net.call(
        "node3",
        "quorum_proposeGroupChange",
        [{"contract": token, "add": [net.key("node4")]}, {"from": net.address("node3")}],
    )
    wait_status(net, "node1", change_id, "voting")
    assert vote(net, "node1", change_id)["status"] == "0x1"
    before = send(
        net,
        "node3",
        ["node1", "node3"],
        {"to": token, "data": transfer_data(net.address("node1"), 11)},
    )
    assert before["status"] == "0x1"  # ordered before H: runs in G
    net.qnet.stop("node1", kill=True, only="node")
    try:
        height = int(vote(net, "node4", change_id)["blockNumber"], 16)
        old_group = group_id(net, "node1", "node3")
        signed = wait_until(
            lambda: own_commitment(net, "node3", old_group, height), 30, "node3's root at H"
        )
        wrong = {
            "type": "quorum-py/group-change/v1",
            "action": "handover",
            "changeId": change_id,
            "commitment": signed,
            "accounts": [],
            "contracts": [],
            "history": None,
        }
        sent = net.call(
            "node3",
            "eth_sendTransaction",
            [
                {
                    "from": net.address("node3"),
                    "to": "0x" + GROUP_CHANGE_ADDRESS.hex(),
                    "data": "0x" + json.dumps(wrong).encode().hex(),
                    "privateFor": [net.key("node4")],
                    "gas": hex(100_000),
                }
            ],
        )
        assert net.receipt("node3", sent)["status"] == "0x1"
        waiting = wait_status(net, "node4", change_id, "active")
        assert waiting["handover"]["state"] == "waiting"  # node1's signed root is missing
    finally:
        net.qnet.start("node1", only="node")

    accepted = wait_accepted(net, "node4", change_id)
    refusals = [e for e in accepted["handover"]["evidence"] if e["sender"] == net.key("node3")]
    assert refusals, accepted["handover"]
    evidence = refusals[0]
    assert "refused" in evidence["reason"] and len(evidence["commitments"]) == 2
    assert evidence["agreedRoot"] == signed["root"] and evidence["offeredRoot"] != signed["root"]
    assert Web3.to_checksum_address(token) in [a["address"] for a in evidence["differingAccounts"]]
    assert "the state handed over by" in net.qnet.log_tail("node4", 200_000)

    assert balance(net, "node4", token, net.address("node1")) == 11
    settled = send(
        net,
        "node1",
        ["node1", "node3", "node4"],
        {"to": token, "data": transfer_data(net.address("node4"), 3)},
    )
    assert settled["status"] == "0x1"
    for name in ("node1", "node3", "node4"):
        assert balance(net, name, token, net.address("node4")) == 3
    roots = {
        name: net.call(name, "quorum_groupContracts", [group_id(net, "node1", "node3", "node4")])
        for name in ("node1", "node3", "node4")
    }
    assert roots["node1"] == roots["node3"] == roots["node4"]
