"""raft_removePeer and raft_addPeer: a member leaves, the rest go on, it comes back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quorum_node.qnet.layout import generate, network_description, node_config_path
from quorum_shared.config_files import read_document, write_document
from tests.network.harness import QnetNetwork, RpcFailure, running_network
from tests.support.node_process import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _cluster_ids(network: QnetNetwork, name: str) -> list[int]:
    return sorted(member["raftId"] for member in network.call(name, "raft_cluster"))


def test_remove_a_member_then_add_it_back(tmp_path_factory: pytest.TempPathFactory) -> None:
    with running_network(tmp_path_factory.mktemp("membership"), 3) as network:
        leader = network.leader()
        follower = next(name for name in network.names if name != leader)
        follower_id = next(
            member["raftId"]
            for member in network.call(leader, "raft_cluster")
            if member["nodeId"] == network.node_id(follower)
        )
        assert network.call(leader, "raft_removePeer", [follower_id]) is None
        assert follower_id not in _cluster_ids(network, leader)
        with pytest.raises(RpcFailure, match="no cluster member"):
            network.call(leader, "raft_removePeer", [follower_id])
        network.stop(follower)

        # Two members left, both up: they still make blocks.
        remaining = [name for name in network.names if name != follower]
        sender = network.account(remaining[0])
        raw, tx_hash = network.sign_transfer(
            sender["private_key"], network.nonce(remaining[0], sender["address"])
        )
        network.call(remaining[0], "eth_sendRawTransaction", [raw])
        network.wait_receipt(remaining[1], tx_hash)

        enode = network.node(follower)["enode"]
        with pytest.raises(RpcFailure, match="raftport"):
            network.call(leader, "raft_addPeer", [enode.split("?")[0]])
        new_id = network.call(leader, "raft_addPeer", [enode])
        assert new_id > max(_cluster_ids(network, leader)) - 1
        with pytest.raises(RpcFailure, match="already a member"):
            network.call(leader, "raft_addPeer", [enode])
        network.start(follower)
        head = network.wait_same_head(timeout=60)
        wait_until(
            lambda: network.try_call(follower, "eth_getTransactionReceipt", [tx_hash]),
            30,
            "the returning member to hold the receipt",
        )
        assert network.head(follower)["hash"] == head


def test_membership_calls_refuse_bad_input(network3: QnetNetwork) -> None:
    name = network3.names[0]
    for params in ([5], [{"enode": 1}], ["enode://nothex@127.0.0.1:1?raftport=2"]):
        with pytest.raises(RpcFailure) as refused:
            network3.call(name, "raft_addPeer", params)
        assert refused.value.error["code"] in (-32602, -32000)
    for params in (["1"], [{"id": 1}], [True]):
        with pytest.raises(RpcFailure) as refused:
            network3.call(name, "raft_removePeer", params)
        assert refused.value.error["code"] == -32602
    with pytest.raises(RpcFailure, match="no cluster member"):
        network3.call(name, "raft_removePeer", [99])
    assert network3.head_number(name) >= 0


def _permissioned(network: QnetNetwork, name: str) -> Path:
    return network.directory / name / "data" / "permissioned-nodes.json"


def test_a_new_node_joins_every_node_sees_it_and_it_can_lead(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A node none of the others was started with joins (GoQuorum's way: on the
    permissioned list of every node, then ``raft_addPeer``, then started). Every member
    lists it with the same raft id, and once it leads, every other node forwards to it."""
    directory = tmp_path_factory.mktemp("joining")
    layout = generate(directory, 4, "raft", 50, with_tx_managers=False)
    network = QnetNetwork(directory, description=network_description(layout))
    founders, newcomer = network.names[:3], network.names[3]
    everyone = [*founders, newcomer]
    all_enodes = json.loads(_permissioned(network, newcomer).read_text())
    try:
        for name in founders:
            _permissioned(network, name).write_text(json.dumps(all_enodes[:3]) + "\n")
        # The newcomer stands for election long before anyone else when a leader goes:
        # its timeout (400-1200 ms, the default) ends before the founders' (2-6 s)
        # begins, and stays well above the leader's heartbeat gaps (50 ms plus a Raft
        # tick of 25 ms), so it never stands while the leader lives.
        config_path = node_config_path(directory / newcomer)
        config = read_document(config_path)
        config["raft_election_timeout_ms"] = 400
        write_document(config_path, config)
        for name in founders:
            config_path = node_config_path(directory / name)
            config = read_document(config_path)
            config["raft_election_timeout_ms"] = 2000
            write_document(config_path, config)
        for name in founders:
            network.start(name)
        leader = network.leader(founders, timeout=60)

        for name in founders:
            _permissioned(network, name).write_text(json.dumps(all_enodes) + "\n")
        new_id = network.call(leader, "raft_addPeer", [network.node(newcomer)["enode"]])
        assert new_id == 4
        network.start(newcomer)

        def everyone_lists_it() -> bool:
            for name in everyone:
                members = network.try_call(name, "raft_cluster") or []
                ids = {m["nodeId"]: m["raftId"] for m in members}
                if ids.get(network.node_id(newcomer)) != new_id or len(ids) != 4:
                    return False
            return True

        wait_until(everyone_lists_it, 60, "every node to list the newcomer with raft id 4")
        network.wait_same_head(everyone, timeout=60)

        network.stop(leader)
        survivors = [name for name in everyone if name != leader]
        assert network.leader(survivors, timeout=60) == newcomer
        for name in survivors:
            assert network.call(name, "raft_leader") == network.node_id(newcomer)
            roles = {m["raftId"]: m["role"] for m in network.call(name, "raft_cluster")}
            assert roles[new_id] == "minter", (name, roles)

        # Every founder still up forwards to the newcomer, which mints.
        sent = []
        for name in [n for n in survivors if n != newcomer]:
            account = network.account(name)
            raw, tx_hash = network.sign_transfer(
                account["private_key"], network.nonce(name, account["address"])
            )
            network.call(name, "eth_sendRawTransaction", [raw])
            sent.append(tx_hash)
        for tx_hash in sent:
            for name in survivors:
                assert network.wait_receipt(name, tx_hash)["status"] == "0x1"
    finally:
        network.down()
