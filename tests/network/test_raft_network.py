"""3- and 4-node Raft networks started by ``qnet up``: a transaction sent to any node is
mined exactly once, every node reports the same chain, and the ``raft_``/``admin_``/
``net_`` answers and ``qnet status`` describe the cluster truthfully."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.network.harness import QnetNetwork
from tests.support.node_process import wait_until

pytestmark = pytest.mark.integration

RAW_PER_ACCOUNT = 8
SENT_PER_NODE = 2
CLUSTER_KEYS = {"raftId", "nodeId", "p2pPort", "raftPort", "hostname", "role", "nodeActive"}


def _send_raw_round_robin(network: QnetNetwork) -> list[str]:
    """Each account's transactions, signed here, go to every node in turn; the accounts
    send at the same time, so every node forwards while others do."""
    names = network.names

    def send_all(index: int) -> list[str]:
        account = network.account(names[index])
        first_nonce = network.nonce(names[index], account["address"], "latest")
        hashes = []
        for offset in range(RAW_PER_ACCOUNT):
            target = names[(index + offset) % len(names)]
            raw, expected_hash = network.sign_transfer(account["private_key"], first_nonce + offset)
            assert network.call(target, "eth_sendRawTransaction", [raw]) == expected_hash
            hashes.append(expected_hash)
        return hashes

    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        return [tx_hash for hashes in pool.map(send_all, range(len(names))) for tx_hash in hashes]


def _send_with_node_accounts(network: QnetNetwork) -> list[str]:
    """``eth_sendTransaction`` on every node, from the account that node holds."""
    hashes = []
    for name in network.names:
        sender = network.account(name)["address"]
        for _ in range(SENT_PER_NODE):
            hashes.append(
                network.call(
                    name,
                    "eth_sendTransaction",
                    [{"from": sender, "to": "0x" + "22" * 20, "value": "0x2"}],
                )
            )
    return hashes


def _receipts_everywhere(network: QnetNetwork, hashes: list[str]) -> dict[str, dict[str, Any]]:
    """Each transaction's receipt, after checking every node returns the same one."""
    receipts = {}
    for tx_hash in hashes:
        per_node = [network.wait_receipt(name, tx_hash) for name in network.names]
        assert all(receipt == per_node[0] for receipt in per_node), per_node
        assert per_node[0]["status"] == "0x1"
        receipts[tx_hash] = per_node[0]
    return receipts


def _assert_same_chain(network: QnetNetwork) -> list[dict[str, Any]]:
    """Every node has the same blocks up to the common head; return them (with txs)."""
    network.wait_same_head()
    head = network.head_number(network.names[0])
    chain = []
    for number in range(head + 1):
        blocks = [
            network.call(name, "eth_getBlockByNumber", [hex(number), True])
            for name in network.names
        ]
        assert all(block == blocks[0] for block in blocks), f"block #{number} differs"
        chain.append(blocks[0])
    return chain


def test_transactions_sent_to_any_node_are_mined_once(network: QnetNetwork) -> None:
    raw_hashes = _send_raw_round_robin(network)
    raw_receipts = _receipts_everywhere(network, raw_hashes)
    # The node-held accounts are the same accounts: sending with them only once the
    # locally signed ones are mined keeps the two from racing for the same nonce.
    sent_hashes = _send_with_node_accounts(network)
    sent_receipts = _receipts_everywhere(network, sent_hashes)
    receipts = {**raw_receipts, **sent_receipts}

    chain = _assert_same_chain(network)
    included = Counter(tx["hash"] for block in chain for tx in block["transactions"])
    for tx_hash, receipt in receipts.items():
        assert included[tx_hash] == 1, f"{tx_hash} included {included[tx_hash]} times"
        block = chain[int(receipt["blockNumber"], 16)]
        assert block["hash"] == receipt["blockHash"]
        assert tx_hash in {tx["hash"] for tx in block["transactions"]}
    assert all(count == 1 for count in included.values()), included.most_common(3)

    heads = [network.head(name) for name in network.names]
    assert len({(h["hash"], h["stateRoot"], h["receiptsRoot"]) for h in heads}) == 1
    for name in network.names:
        address = network.account(name)["address"]
        expected_nonce = RAW_PER_ACCOUNT + SENT_PER_NODE
        for reader in network.names:
            assert network.nonce(reader, address, "latest") >= expected_nonce
        for reader in network.names:
            assert network.call(reader, "txpool_status") == {"pending": "0x0", "queued": "0x0"}


def test_raft_and_admin_answers_are_truthful(network: QnetNetwork) -> None:
    size = len(network.names)
    leader = network.leader()
    leader_id = network.node_id(leader)
    roles = {name: network.call(name, "raft_role") for name in network.names}
    assert sorted(roles.values()) == ["minter"] + ["verifier"] * (size - 1), roles
    assert roles[leader] == "minter"

    for name in network.names:
        assert network.call(name, "raft_leader") == leader_id
        cluster = network.call(name, "raft_cluster")
        assert len(cluster) == size
        for member in cluster:
            assert set(member) == CLUSTER_KEYS, member
        by_id = {member["nodeId"]: member for member in cluster}
        assert set(by_id) == {network.node_id(n) for n in network.names}
        assert sorted(m["raftId"] for m in cluster) == list(range(1, size + 1))
        for other in network.names:
            member = by_id[network.node_id(other)]
            config = network.node_config(other)
            assert member["p2pPort"] == config["p2p_port"]
            assert member["raftPort"] == config["raft_port"]
            assert member["hostname"] == config["p2p_host"]
            assert member["role"] == ("minter" if other == leader else "verifier")
        wait_until(
            lambda name=name: all(m["nodeActive"] for m in network.call(name, "raft_cluster")),
            15,
            f"every member active in {name}'s raft_cluster",
        )

        info = network.call(name, "admin_nodeInfo")
        assert info["enode"] == network.node(name)["enode"]
        assert info["id"] == network.node_id(name)
        assert info["protocols"]["raft"]["raftport"] == network.node_config(name)["raft_port"]

        wait_until(
            lambda name=name: network.call(name, "net_peerCount") == hex(size - 1),
            15,
            f"{name} to count {size - 1} peers",
        )
        peers = network.call(name, "admin_peers")
        assert sorted(peer["enode"] for peer in peers) == sorted(
            network.node(other)["enode"] for other in network.names if other != name
        )


def test_qnet_status_shows_role_head_and_peers(network: QnetNetwork) -> None:
    network.wait_same_head()
    head = network.head(network.names[0])
    leader = network.leader()
    size = len(network.names)
    wait_until(
        lambda: all(network.call(n, "net_peerCount") == hex(size - 1) for n in network.names),
        15,
        "every node to see all its peers",
    )
    output = network.status_output()
    rows = {line.split()[0]: line.split() for line in output.splitlines()[1:] if line.strip()}
    assert set(rows) == set(network.names), output
    for name, columns in rows.items():
        role = "minter" if name == leader else "verifier"
        assert role in columns, output
        assert columns[-1] == str(size - 1), output  # peers
        # head number and hash prefix (no block is made while nothing is sent)
        assert str(int(head["number"], 16)) in columns, output
        assert any(head["hash"].startswith(column) for column in columns), output
