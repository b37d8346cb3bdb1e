"""A participant that lost both its chain and its manager's store comes back whole.

On 3 nodes, private contracts in every party group (AB, AC, BC, ABC) are created and
written. Then node3's node and manager are stopped and wiped (``quorum_node.wipe`` and
``tx_manager.wipe``, what ``--wipe`` runs), its node started first (it resyncs from its
peers while its manager is down), then its manager, which recovers from its peers at
start. node2's manager is paused meanwhile (15 s; set QUORUM_TEST_RECOVERY_SECONDS to 70
to outlast the node's own 60 s wait), so the recovery is still under way when the node
asks for payloads: the manager answers "recovering" (503), the node waits, and never
records "not a party". Afterwards node3's private state equals the other members' for
every group it is in, and it holds nothing of the group it is not in.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from eth_abi import encode
from eth_utils import keccak

from quorum_node.config import load_node_config
from quorum_node.qnet.layout import node_config_path, tm_config_path
from quorum_node.wipe import wipe_chain_state
from quorum_shared.config_files import read_document, write_document
from tests.privacy.conftest import PrivateNet, artifact, private_network
from tests.support.waiting import wait_until
from tx_manager.config import load_config
from tx_manager.wipe import wipe_store

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(400)]

GROUPS = {
    "AB": ("node1", "node2"),
    "AC": ("node1", "node3"),
    "BC": ("node2", "node3"),
    "ABC": ("node1", "node2", "node3"),
}
GET_DATA = "0x" + keccak(text="get()")[:4].hex()
WIPED = "node3"
PAUSED_MANAGER = "node2"
RECOVERY_SECONDS = float(os.environ.get("QUORUM_TEST_RECOVERY_SECONDS", "15"))


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateNet]:
    with private_network(tmp_path_factory.mktemp("recovery"), 3) as network:
        yield network


def send(net: PrivateNet, sender: str, group: str, request: dict[str, object]) -> str:
    others = [net.key(member) for member in GROUPS[group] if member != sender]
    return str(
        net.call(
            sender,
            "eth_sendTransaction",
            [{"from": net.address(sender), "privateFor": others, **request}],
        )
    )


def deploy_data(value: int) -> str:
    return artifact("SimpleStorage")["bytecode"] + encode(["uint256"], [value]).hex()


def set_data(value: int) -> str:
    return "0x" + (keccak(text="set(uint256)")[:4] + encode(["uint256"], [value])).hex()


def stored(net: PrivateNet, name: str, address: str) -> str:
    return str(net.call(name, "eth_call", [{"to": address, "data": GET_DATA}, "latest"]))


def recovery_status(net: PrivateNet, name: str) -> dict[str, object]:
    with urllib.request.urlopen(f"{net.tm_url(name)}/recovery", timeout=5) as response:
        return dict(json.loads(response.read()))


def manager_pid(net: PrivateNet, name: str) -> int:
    return int((net.directory(name) / "tm.pid").read_text().strip())


@contextmanager
def paused(pid: int) -> Iterator[None]:
    """SIGSTOP a process of this test's network, and SIGCONT it whatever happens."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def node_log(net: PrivateNet, name: str) -> str:
    return (net.directory(name) / "node.log").read_text(errors="replace")


def test_a_wiped_participant_recovers_its_private_state(net: PrivateNet) -> None:
    # Private contracts in every group, each created by one member, written by another.
    addresses: dict[str, str] = {}
    expected: dict[str, int] = {}
    sent_to_wiped: list[str] = []
    for index, (group, members) in enumerate(GROUPS.items()):
        created = send(net, members[0], group, {"data": deploy_data(index), "gas": 500_000})
        addresses[group] = net.receipt(members[0], created)["contractAddress"]
        sent_to_wiped += [created] if WIPED in members else []
    for index, (group, members) in enumerate(GROUPS.items()):
        value = 1000 + index
        written = send(net, members[-1], group, {"to": addresses[group], "data": set_data(value)})
        assert net.receipt(members[-1], written)["status"] == "0x1"
        expected[group] = value
        sent_to_wiped += [written] if WIPED in members else []
    head = net.wait_same_head()
    number = hex(int(net.call("node1", "eth_getBlockByHash", [head, False])["number"], 16))
    roots_before = {name: net.call(name, "debug_privateStateRoots", [number]) for name in net.names}
    for group, members in GROUPS.items():
        for name in members:
            assert int(stored(net, name, addresses[group]), 16) == expected[group]

    # node3 loses everything but its keys and config.
    net.qnet.stop(WIPED)
    directory = net.directory(WIPED)
    deleted_chain = wipe_chain_state(load_node_config(node_config_path(directory)))
    tm_config = tm_config_path(directory)
    deleted_store = wipe_store(load_config(tm_config), tm_config)
    assert any(p.name == "chain.sqlite" for p in deleted_chain)
    assert any(p.name == "raft" for p in deleted_chain)
    assert any(p.suffix == ".db" or p.name.endswith(".db") for p in deleted_store), deleted_store

    # Its node first: it resyncs the public chain and waits for its manager. node2's
    # manager is paused for RECOVERY_SECONDS, which node3's manager waits out (its peer
    # timeout raised above that), so the recovery lasts that long.
    write_document(tm_config, {**read_document(tm_config), "peer_timeout": 4 * RECOVERY_SECONDS})
    net.qnet.start(WIPED, only="node")
    paused_at = time.monotonic()
    with paused(manager_pid(net, PAUSED_MANAGER)):
        net.qnet.start(WIPED, only="tm")  # recovers at start: its store is empty
        assert recovery_status(net, WIPED)["recovering"] is True
        wait_until(
            lambda: "to finish its recovery" in node_log(net, WIPED),
            RECOVERY_SECONDS,
            "node3 to wait for its recovering manager",
        )
        assert recovery_status(net, WIPED)["recovering"] is True
        time.sleep(max(0.0, paused_at + RECOVERY_SECONDS - time.monotonic()))  # a long recovery
    wait_until(lambda: recovery_status(net, WIPED)["recovering"] is False, 60, "the recovery")
    for tx_hash in sent_to_wiped:  # every payload node3 is a party to is back
        payload_hash = net.call("node1", "eth_getTransactionByHash", [tx_hash])["input"]
        assert net.call(WIPED, "eth_getQuorumPayload", [payload_hash]) != "0x", tx_hash
    assert int(str(recovery_status(net, WIPED)["received"])) >= len(sent_to_wiped)

    net.wait_same_head(timeout=120)
    roots_after = {name: net.call(name, "debug_privateStateRoots", [number]) for name in net.names}
    assert roots_after[WIPED] == roots_before[WIPED]
    for group, members in GROUPS.items():
        address = addresses[group]
        if WIPED in members:
            assert int(stored(net, WIPED, address), 16) == expected[group], group
            roots = {net.call(name, "eth_storageRoot", [address, "latest"]) for name in members}
            assert len(roots) == 1, (group, roots)
        else:
            assert stored(net, WIPED, address) == "0x", group
    log = node_log(net, WIPED)
    assert "finish its recovery" in log
    assert "answered for" in log  # and went on once the manager answered


def test_the_wiped_participant_takes_part_in_new_private_transactions(net: PrivateNet) -> None:
    address = net.receipt(
        "node3",
        send(net, "node3", "BC", {"data": deploy_data(7), "gas": 500_000}),
    )["contractAddress"]
    net.wait_same_head()
    assert int(stored(net, "node2", address), 16) == 7
    assert stored(net, "node1", address) == "0x"
