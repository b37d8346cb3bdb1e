"""Signed group roots through real processes (docs/audit.md): three participants, each a
node and a manager. Members that agree say so; a member whose manager hands its node a
different payload is caught by every member with verifiable evidence; a forged second
root is an equivocation; a silent member is lagging; a kill -9 in the middle of the
exchange loses nothing and raises no false alarm."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from eth_abi import encode
from eth_utils import keccak

from quorum_node.qnet.layout import node_config_path
from quorum_shared.commitments import CommitmentClaim, GroupCommitment, verify_json
from quorum_shared.config_files import read_document, write_document
from tests.network.harness import QNET
from tests.privacy.conftest import PrivateNet, artifact, private_network
from tests.support.localnet import post_json
from tests.support.tampering_manager import TamperingManager
from tests.support.waiting import wait_until
from tx_manager.enclave import Enclave
from tx_manager.fields import privacy_group_id
from tx_manager.keyfile import read_keypair

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

GET = "0x" + keccak(text="get()")[:4].hex()


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateNet]:
    with private_network(tmp_path_factory.mktemp("audit3"), 3) as network:
        yield network


def group_id(net: PrivateNet, *names: str) -> str:
    return "0x" + privacy_group_id([base64.b64decode(net.key(n)) for n in names]).hex()


def audit_entry(net: PrivateNet, name: str, group: str) -> dict[str, Any] | None:
    return next((e for e in net.call(name, "quorum_auditStatus") if e["groupId"] == group), None)


def deploy(net: PrivateNet, sender: str, others: list[str], value: int) -> dict[str, Any]:
    data = artifact("SimpleStorage")["bytecode"] + encode(["uint256"], [value]).hex()
    tx_hash = net.call(
        sender,
        "eth_sendTransaction",
        [
            {
                "from": net.address(sender),
                "data": data,
                "gas": hex(500_000),
                "privateFor": [net.key(o) for o in others],
            }
        ],
    )
    return net.receipt(sender, tx_hash)


def wait_status(
    net: PrivateNet, names: list[str], group: str, wanted: str, timeout: float = 30
) -> dict[str, dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}

    def reached() -> bool:
        for name in names:
            entry = audit_entry(net, name, group)
            if entry is None or entry["status"] != wanted:
                return False
            seen[name] = entry
        return True

    wait_until(reached, timeout, f"{names} to report {wanted} for group {group[:10]}")
    return seen


def test_members_that_agree_report_the_same_signed_root(net: PrivateNet) -> None:
    receipt = deploy(net, "node1", ["node2"], 7)
    group = group_id(net, "node1", "node2")
    height = int(receipt["blockNumber"], 16)

    def agreed_past_deploy() -> bool:
        entries = [audit_entry(net, n, group) for n in ("node1", "node2")]
        return all(
            e is not None and e["status"] == "agreed" and e["agreedHeight"] >= height
            for e in entries
        )

    wait_until(agreed_past_deploy, 30, "both members to agree after the deploy")
    entry = audit_entry(net, "node1", group)
    assert entry is not None
    assert sorted(entry["members"]) == sorted([net.key("node1"), net.key("node2")])
    assert entry["alarms"] == []
    assert entry["memberHeights"][net.key("node2")] >= height
    assert audit_entry(net, "node3", group) is None  # not a member, knows nothing of it
    # w3.quorum sees the same
    assert any(e["groupId"] == group for e in net.w3("node2").quorum.audit_status())


class AlarmListener:
    """``eth_subscribe("quorumAudit")`` on a node's WebSocket, in a thread."""

    def __init__(self, ws_url: str) -> None:
        self.ws_url = ws_url
        self.alarms: list[dict[str, Any]] = []
        self.subscribed = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._listen()), daemon=True)

    def start(self) -> AlarmListener:
        self._thread.start()
        assert self.subscribed.wait(15), "no subscription"
        return self

    async def _listen(self) -> None:
        async with aiohttp.ClientSession() as session, session.ws_connect(self.ws_url) as ws:
            request = {"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe"}
            await ws.send_json({**request, "params": ["quorumAudit"]})
            answer = await ws.receive_json(timeout=10)
            assert "result" in answer, answer
            self.subscribed.set()
            async for message in ws:
                notification = json.loads(message.data)
                self.alarms.append(notification["params"]["result"])


def _point_node_at(net: PrivateNet, name: str, tm_url: str) -> None:
    net.qnet.stop(name, only="node")
    config_path = node_config_path(net.directory(name))
    config = read_document(config_path)
    config["tm_url"] = tm_url
    write_document(config_path, config)
    net.qnet.start(name, only="node")


def test_a_member_that_executes_a_different_payload_is_caught_by_every_member(
    net: PrivateNet,
) -> None:
    members = ["node1", "node2", "node3"]
    group = group_id(net, *members)
    honest, forged = encode(["uint256"], [4242]), encode(["uint256"], [4343])
    real_tm = net.tm_url("node3")
    stand_in = TamperingManager(real_tm, honest, forged).start()
    try:
        _point_node_at(net, "node3", stand_in.url)
        listener = AlarmListener(str(net.qnet.node("node1")["ws_url"])).start()
        receipt = deploy(net, "node1", ["node2", "node3"], 4242)
        contract = receipt["contractAddress"]
        seen = wait_status(net, members, group, "mismatch", timeout=30)
        assert stand_in.tampered >= 1
        node3_value = net.call("node3", "eth_call", [{"to": contract, "data": GET}, "latest"])
        assert int(node3_value, 16) == 4343  # the stand-in really changed what node3 ran

        # every member holds evidence naming the diverging member, and it verifies offline
        alarm = next(a for a in seen["node1"]["alarms"] if a["kind"] == "mismatch")
        assert alarm["member"] == net.key("node3")
        assert len(alarm["evidence"]) >= 2
        w3 = net.w3("node2")
        assert all(w3.quorum.verify_commitment(c) for c in alarm["evidence"])
        roots = {c["member"]: c["root"] for c in alarm["evidence"]}
        assert roots[net.key("node3")] != roots[net.key("node1")]
        doctored = {**alarm["evidence"][0], "root": "0x" + "00" * 32}
        assert not w3.quorum.verify_commitment(doctored)
        assert any(a["member"] == net.key("node3") for a in seen["node2"]["alarms"])
        assert any(a["kind"] == "mismatch" for a in seen["node3"]["alarms"])

        # quorum_groupContracts pinpoints the contract
        height = hex(alarm["height"])
        on_1 = {
            a["address"]: a for a in net.call("node1", "quorum_groupContracts", [group, height])
        }
        on_3 = {
            a["address"]: a for a in net.call("node3", "quorum_groupContracts", [group, height])
        }
        assert contract in on_1 and contract in on_3
        assert on_1[contract]["storageRoot"] != on_3[contract]["storageRoot"]
        assert on_1[contract]["codeHash"] == on_3[contract]["codeHash"]

        # the subscriber heard it
        wait_until(lambda: bool(listener.alarms), 15, "the quorumAudit notification")
        assert listener.alarms[0]["kind"] == "mismatch"
        assert listener.alarms[0]["groupId"] == group

        # qnet audit shows it and exits 1
        audit = subprocess.run(
            [*QNET, "audit", "--dir", str(net.qnet.directory)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert audit.returncode == 1, audit.stdout + audit.stderr
        assert "mismatch" in audit.stdout
        assert contract in audit.stdout

        # the alarm survives a restart and is listed again, not raised again
        net.qnet.stop("node1", only="node")
        net.qnet.start("node1", only="node")
        entry = audit_entry(net, "node1", group)
        assert entry is not None and entry["status"] == "mismatch"
        assert alarm in entry["alarms"]
    finally:
        _point_node_at(net, "node3", real_tm)
        stand_in.stop()


def _forged_push(
    net: PrivateNet, signer_name: str, receiver: str, claim: CommitmentClaim, *, tag: bytes | None
) -> tuple[int, Any]:
    directory = net.directory(signer_name) / "tm"
    keypair = read_keypair(directory / f"{signer_name}.pub", directory / f"{signer_name}.key", None)
    enclave = Enclave([keypair])
    commitment = enclave.sign_claim(claim)
    receiver_key = base64.b64decode(net.key(receiver))
    binding = (
        tag
        if tag is not None
        else enclave.binding_tag(keypair.public, receiver_key, commitment.signer)
    )
    body = {
        "to": net.key(receiver),
        "items": [
            {
                "commitment": commitment.to_json(),
                "members": sorted([net.key(signer_name), net.key(receiver)]),
                "binding": "0x" + binding.hex(),
            }
        ],
    }
    return post_json(str(net.qnet.node(receiver)["tm_p2p_url"]) + "/commitments/push", body)


def test_a_member_that_signs_two_roots_for_one_height_is_an_equivocator(net: PrivateNet) -> None:
    group = group_id(net, "node1", "node2")
    entry = wait_status(net, ["node1"], group, "agreed")["node1"]
    height = entry["memberHeights"][net.key("node2")]
    honest = entry["memberRoots"][net.key("node2")]  # what node2 really signed there
    block = net.call("node1", "eth_getBlockByNumber", [hex(height), False])
    claim = CommitmentClaim(
        chain_id=int(net.call("node1", "eth_chainId"), 16),
        group_id=bytes.fromhex(group[2:]),
        block_number=height,
        block_hash=bytes.fromhex(block["hash"][2:]),
        root=os.urandom(32),
        member=base64.b64decode(net.key("node2")),
    )
    # a tag that binds nothing is refused, and nothing is stored
    status, body = _forged_push(net, "node2", "node1", claim, tag=b"\x00" * 32)
    assert status == 403, body
    assert audit_entry(net, "node1", group)["status"] == "agreed"  # type: ignore[index]

    status, body = _forged_push(net, "node2", "node1", claim, tag=None)
    assert status == 200, body
    seen = wait_status(net, ["node1"], group, "equivocation", timeout=15)["node1"]
    alarm = next(a for a in seen["alarms"] if a["kind"] == "equivocation")
    assert alarm["member"] == net.key("node2")
    assert alarm["height"] == height
    assert {c["root"] for c in alarm["evidence"]} == {honest, "0x" + claim.root.hex()}
    assert all(verify_json(c) for c in alarm["evidence"])
    assert {GroupCommitment.from_json(c).signer for c in alarm["evidence"]} == {
        bytes.fromhex(alarm["evidence"][0]["signer"][2:])
    }


def test_a_member_whose_node_is_down_is_lagging_until_it_returns(net: PrivateNet) -> None:
    group = group_id(net, "node2", "node3")
    deploy(net, "node2", ["node3"], 11)
    wait_status(net, ["node2", "node3"], group, "agreed")
    net.qnet.stop("node3", only="node")
    try:
        sender = net.address("node1")
        for _ in range(35):  # three intervals of 10 blocks, and a few more
            tx_hash = net.call("node1", "eth_sendTransaction", [{"from": sender, "to": sender}])
            net.receipt("node1", tx_hash)
        seen = wait_status(net, ["node2"], group, "lagging", timeout=30)["node2"]
        alarm = next(a for a in seen["alarms"] if a["kind"] == "lagging")
        assert alarm["member"] == net.key("node3")
    finally:
        net.qnet.start("node3", only="node")
    wait_status(net, ["node2", "node3"], group, "agreed", timeout=60)


def test_kill_9_during_the_exchange_loses_nothing_and_raises_no_false_alarm(
    net: PrivateNet,
) -> None:
    group = group_id(net, "node1", "node3")
    sent: list[str] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                sent.append(deploy(net, "node1", ["node3"], 5)["blockNumber"])
            except Exception:  # noqa: BLE001 - node3 is being killed; sends may fail
                pass

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    try:
        wait_until(lambda: len(sent) >= 3, 60, "a few private deploys")
        net.qnet.stop("node3", kill=True)
        net.qnet.start("node3")
        count = len(sent)
        wait_until(lambda: len(sent) >= count + 3, 60, "deploys after the restart")
    finally:
        stop.set()
        worker.join(60)
    last = max(int(block, 16) for block in sent)

    def agreed_past_load() -> bool:
        entries = [audit_entry(net, n, group) for n in ("node1", "node3")]
        return all(
            e is not None and e["agreedHeight"] is not None and e["agreedHeight"] >= last
            for e in entries
        )

    wait_until(agreed_past_load, 60, "both members to agree after the load")
    for name in ("node1", "node3"):
        entry = audit_entry(net, name, group)
        assert entry is not None
        assert entry["status"] in ("agreed", "lagging"), entry
        assert not [a for a in entry["alarms"] if a["kind"] in ("mismatch", "equivocation")]
