"""A node acknowledges only what it can deliver: real processes, kill -9 and SIGSTOP.

* A node restarted behind the cluster (held there by stopping every other node)
  refuses sends with "node is catching up" instead of choosing or accepting a nonce
  already used, and once it caught up it sends with the right nonce and refuses a
  used one with geth's "nonce too low".
* A send acknowledged by a follower or by the leader, which is then killed at once,
  is mined after its restart (the journal), whether or not it was forwarded or put
  in a block before the kill.
* A send acknowledged by a follower whose leader is killed at once is mined by the
  next leader.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from quorum_node.qnet.processes import running_pid
from tests.network.harness import QnetNetwork, RpcFailure

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def pid(network: QnetNetwork, name: str) -> int:
    found = running_pid(network.directory, name, "node")
    assert found is not None, f"{name}'s node is not running"
    return found


@contextmanager
def stopped(network: QnetNetwork, names: list[str]) -> Iterator[None]:
    """SIGSTOP the nodes of ``names``; SIGCONT them whatever happens."""
    pids = [pid(network, name) for name in names]
    for process in pids:
        os.kill(process, signal.SIGSTOP)
    try:
        yield
    finally:
        for process in pids:
            os.kill(process, signal.SIGCONT)


def kill_and_restart(network: QnetNetwork, name: str, process: int) -> None:
    os.kill(process, signal.SIGKILL)
    network.start(name)


def transfer(network: QnetNetwork, through: str, owner: str, nonce: int) -> tuple[str, str]:
    """A transfer from ``owner``'s account with ``nonce``, sent raw through ``through``."""
    raw, tx_hash = network.sign_transfer(network.account(owner)["private_key"], nonce)
    assert network.call(through, "eth_sendRawTransaction", [raw]) == tx_hash
    return raw, tx_hash


def mined_everywhere(network: QnetNetwork, tx_hash: str) -> dict[str, object]:
    return {name: network.wait_receipt(name, tx_hash, timeout=60) for name in network.names}


def refusal(network: QnetNetwork, name: str, method: str, params: list[object]) -> str:
    with pytest.raises(RpcFailure) as raised:
        network.call(name, method, params)
    return str(raised.value.error["message"])


def test_a_node_behind_the_cluster_refuses_sends_until_it_caught_up(
    network3: QnetNetwork,
) -> None:
    network = network3
    behind, others = "node1", ["node2", "node3"]
    address = network.account(behind)["address"]
    first = network.call(behind, "eth_sendTransaction", [{"from": address, "to": address}])
    mined_everywhere(network, first)

    os.kill(pid(network, behind), signal.SIGKILL)
    # The account moves on through the others while node1 is down.
    base = network.nonce("node2", address)
    used = [transfer(network, "node2", behind, base + offset) for offset in range(3)]
    for _, tx_hash in used:
        network.wait_receipt("node2", tx_hash)

    with stopped(network, others):  # node1 comes back with nobody to catch up from
        network.start(behind)
        assert "node is catching up: head" in refusal(
            network, behind, "eth_sendTransaction", [{"from": address, "to": address}]
        )
        assert "node is catching up: head" in refusal(
            network, behind, "eth_sendRawTransaction", [used[0][0]]
        )
    network.leader()
    sent = network.call(behind, "eth_sendTransaction", [{"from": address, "to": address}])
    receipts = mined_everywhere(network, sent)
    assert len(set(map(str, receipts.values()))) == 1
    transaction = network.call("node2", "eth_getTransactionByHash", [sent])
    assert int(transaction["nonce"], 16) == base + 3
    assert refusal(network, behind, "eth_sendRawTransaction", [used[1][0]]) == "nonce too low"
    network.wait_same_head()


@pytest.mark.parametrize("role", ["follower", "leader"])
def test_a_send_acknowledged_just_before_a_kill_is_mined_after_the_restart(
    network3: QnetNetwork, role: str
) -> None:
    network = network3
    leader = network.leader()
    name = leader if role == "leader" else next(n for n in network.names if n != leader)
    process = pid(network, name)
    address = network.account(name)["address"]
    _, tx_hash = transfer(network, name, name, network.nonce(name, address))
    kill_and_restart(network, name, process)  # right after the answer
    mined_everywhere(network, tx_hash)
    network.wait_same_head()


def test_a_send_a_follower_acknowledged_survives_its_leader_dying_at_once(
    network3: QnetNetwork,
) -> None:
    network = network3
    leader = network.leader()
    follower = next(n for n in network.names if n != leader)
    leader_process = pid(network, leader)
    address = network.account(follower)["address"]
    _, tx_hash = transfer(network, follower, follower, network.nonce(follower, address))
    os.kill(leader_process, signal.SIGKILL)
    survivors = [n for n in network.names if n != leader]
    for name in survivors:
        network.wait_receipt(name, tx_hash, timeout=60)
    network.start(leader)
    mined_everywhere(network, tx_hash)
    network.wait_same_head()
