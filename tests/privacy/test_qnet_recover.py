"""``qnet recover --wipe`` on a real network: after 300 private transactions over three
party groups, node3's chain and manager store are wiped; the command brings them back
from the other participants and proves it, group by group, against the other members'
signed roots. The few transactions node3 sent to nobody else (``privateFor: []``) are
counted as unrecoverable, and the command's exit status says whether all went well."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from eth_abi import encode
from eth_utils import keccak

from tests.network.harness import QNET
from tests.privacy.conftest import PrivateNet, artifact, private_network
from tests.privacy.test_audit import group_id

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

GROUPS = {
    "AC": ("node1", "node3"),
    "BC": ("node2", "node3"),
    "ABC": ("node1", "node2", "node3"),
}
TRANSACTIONS = 300
ALONE = 3  # node3's transactions with privateFor: []
GET = "0x" + keccak(text="get()")[:4].hex()


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateNet]:
    with private_network(tmp_path_factory.mktemp("qnet-recover"), 3) as network:
        yield network


def send(net: PrivateNet, sender: str, others: list[str], request: dict[str, object]) -> str:
    return str(
        net.call(
            sender,
            "eth_sendTransaction",
            [
                {
                    "from": net.address(sender),
                    "privateFor": [net.key(o) for o in others],
                    "gas": hex(300_000),
                    **request,
                }
            ],
        )
    )


def test_qnet_recover_brings_a_wiped_participant_back_and_proves_it(net: PrivateNet) -> None:
    contracts: dict[str, str] = {}
    for group, members in GROUPS.items():
        sender, others = members[0], list(members[1:])
        data = artifact("SimpleStorage")["bytecode"] + encode(["uint256"], [0]).hex()
        tx_hash = send(net, sender, others, {"data": data})
        contracts[group] = net.receipt(sender, tx_hash)["contractAddress"]

    def write(index: int) -> str:
        group = list(GROUPS)[index % len(GROUPS)]
        members = GROUPS[group]
        sender = members[index % len(members)]
        others = [m for m in members if m != sender]
        call = keccak(text="set(uint256)")[:4] + encode(["uint256"], [index + 1])
        return f"{sender}:" + send(
            net, sender, others, {"to": contracts[group], "data": "0x" + call.hex()}
        )

    with ThreadPoolExecutor(12) as pool:
        sent = list(pool.map(write, range(TRANSACTIONS - len(GROUPS) - ALONE)))
    alone_data = artifact("SimpleStorage")["bytecode"] + encode(["uint256"], [9]).hex()
    sent += [f"node3:{send(net, 'node3', [], {'data': alone_data})}" for _ in range(ALONE)]
    for item in sent:
        name, tx_hash = item.split(":")
        assert net.receipt(name, tx_hash, timeout=120)["status"] == "0x1"
    net.wait_same_head(timeout=60)
    before = {
        group: net.call("node3", "eth_call", [{"to": address, "data": GET}, "latest"])
        for group, address in contracts.items()
    }

    completed = subprocess.run(
        [*QNET, "recover", "--dir", str(net.qnet.directory), "node3", "--wipe", "--json"],
        capture_output=True,
        text=True,
        timeout=500,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["ok"] is True, report
    assert report["unrecoverable"] == ALONE
    by_group = {g["groupId"]: g for g in report["groups"]}
    for members in GROUPS.values():
        checked = by_group[group_id(net, *members)]
        assert checked["matching"] == checked["members"] == len(members), checked
        assert checked["payloads"] >= (TRANSACTIONS - ALONE) // len(GROUPS) - 1
        assert checked["height"] is not None
    after = {
        group: net.call("node3", "eth_call", [{"to": address, "data": GET}, "latest"])
        for group, address in contracts.items()
    }
    assert after == before

    # the same check for a participant on its own host
    verified = subprocess.run(
        [
            *QNET[:2],
            "quorum_node.cli",
            "verify-recovery",
            "--rpc",
            net.qnet.url("node3"),
            "--tm-key",
            net.key("node3"),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=200,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    again = json.loads(verified.stdout.strip().splitlines()[-1])
    assert again["ok"] is True and again["unrecoverable"] == ALONE

    # the table form, and qnet audit agreeing afterwards
    table = subprocess.run(
        [*QNET, "audit", "--dir", str(net.qnet.directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert table.returncode == 0, table.stdout + table.stderr
    assert "mismatch" not in table.stdout
