"""raft_removePeer and raft_addPeer: a member leaves, the rest go on, it comes back."""

from __future__ import annotations

import pytest

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
