"""Faults on a 3-node Raft network: kill -9 the leader under load, a follower away for
200 blocks, two of three nodes down. The tests share one network and each leaves all
three nodes running (each starts by checking that)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.network.harness import QnetNetwork, RpcFailure
from tests.support.node_process import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FOLLOWER_AWAY_BLOCKS = 200


@dataclass
class Load:
    """A thread that sends transfers, signed here, to ``targets`` and records every
    receipt a node returned for them."""

    network: QnetNetwork
    targets: list[str]
    senders: list[dict[str, str]]
    sent: dict[str, str] = field(default_factory=dict)  # tx hash -> node it was sent to
    receipts: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tx-load", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            assert not self._thread.is_alive(), "the load thread did not stop"

    def _run(self) -> None:
        nonces = {
            s["address"]: self.network.nonce(self.targets[0], s["address"]) for s in self.senders
        }
        while not self._stop.is_set():
            for index, sender in enumerate(self.senders):
                target = self.targets[index % len(self.targets)]
                raw, tx_hash = self.network.sign_transfer(
                    sender["private_key"], nonces[sender["address"]]
                )
                try:
                    result = self.network.call(target, "eth_sendRawTransaction", [raw])
                except (OSError, RpcFailure) as exc:
                    self.errors.append(f"{target}: {exc}")
                    continue
                if result == tx_hash:
                    self.sent[tx_hash] = target
                    nonces[sender["address"]] += 1
            self._collect_receipts()
            self._stop.wait(0.02)  # pacing of the load, not a wait for a condition
        self._collect_receipts()

    def _collect_receipts(self) -> None:
        for tx_hash, target in list(self.sent.items()):
            if tx_hash in self.receipts:
                continue
            receipt = self.network.try_call(target, "eth_getTransactionReceipt", [tx_hash])
            if receipt is not None:
                self.receipts[tx_hash] = receipt


def _all_running(network: QnetNetwork) -> None:
    """Start whatever an earlier (perhaps failed) test left stopped, and wait until the
    three nodes agree on a leader and a head."""
    for name in network.names:
        if network.try_call(name, "eth_chainId") is None:
            network.start(name)
    network.leader()
    network.wait_same_head(timeout=60)


def _assert_receipts_on(
    network: QnetNetwork, receipts: dict[str, dict[str, Any]], names: list[str]
) -> None:
    for tx_hash, receipt in receipts.items():
        for name in names:
            found = network.wait_receipt(name, tx_hash, timeout=30)
            assert found["blockHash"] == receipt["blockHash"], (tx_hash, name, found, receipt)
            assert found["blockNumber"] == receipt["blockNumber"]


def test_kill_leader_under_load(network3: QnetNetwork) -> None:
    network = network3
    _all_running(network)
    leader = network.leader()
    followers = [name for name in network.names if name != leader]
    load = Load(network, followers, [network.account(name) for name in network.names])
    load.start()
    try:
        wait_until(lambda: len(load.receipts) >= 10, 30, "receipts under load before the kill")
        network.stop(leader, kill=True, only="node")
        receipts_at_kill = len(load.receipts)
        head_at_kill = max(network.head_number(name) for name in followers)

        new_leader = network.leader(followers, timeout=30)
        assert new_leader in followers
        wait_until(
            lambda: (
                len(load.receipts) >= receipts_at_kill + 10
                and network.head_number(new_leader) > head_at_kill
            ),
            30,
            "the chain to go on under the new leader",
        )
    finally:
        load.stop()

    # Every receipt a node returned is on both live nodes, in the same block.
    network.wait_same_head(followers)
    _assert_receipts_on(network, load.receipts, followers)
    # And nothing a follower accepted is stranded: all of it gets mined.
    for tx_hash in load.sent:
        network.wait_receipt(followers[0], tx_hash, timeout=30)

    network.start(leader, only="node")
    head = network.wait_same_head(timeout=60)
    assert network.head(leader)["hash"] == head
    _assert_receipts_on(network, load.receipts, [leader])
    # The old leader takes part again: a transaction sent to it is mined everywhere.
    account = network.account(leader)
    raw, tx_hash = network.sign_transfer(
        account["private_key"], network.nonce(leader, account["address"])
    )
    network.call(leader, "eth_sendRawTransaction", [raw])
    for name in network.names:
        network.wait_receipt(name, tx_hash)
    network.wait_same_head()


def test_follower_away_for_200_blocks_catches_up(network3: QnetNetwork) -> None:
    network = network3
    _all_running(network)
    leader = network.leader()
    away = next(name for name in network.names if name != leader)
    present = [name for name in network.names if name != away]
    network.stop(away)
    start_head = network.head_number(leader)

    # Some blocks carry transactions (so state moves on), the rest are empty.
    account = network.account(leader)
    nonce = network.nonce(leader, account["address"])
    tx_hashes = []
    for _ in range(20):
        raw, tx_hash = network.sign_transfer(account["private_key"], nonce)
        network.call(leader, "eth_sendRawTransaction", [raw])
        tx_hashes.append(tx_hash)
        nonce += 1
    network.wait_receipt(leader, tx_hashes[-1])
    while network.head_number(leader) < start_head + FOLLOWER_AWAY_BLOCKS:
        network.call(leader, "evm_mine")
    network.wait_same_head(present)

    network.start(away)
    head = network.wait_same_head(timeout=90)
    assert network.head_number(away) >= start_head + FOLLOWER_AWAY_BLOCKS
    assert network.head(away)["hash"] == head
    assert network.head(away)["stateRoot"] == network.head(leader)["stateRoot"]
    for tx_hash in tx_hashes:
        assert network.call(away, "eth_getTransactionReceipt", [tx_hash]) == network.call(
            leader, "eth_getTransactionReceipt", [tx_hash]
        )


def test_two_of_three_down_stops_blocks_until_one_returns(network3: QnetNetwork) -> None:
    network = network3
    _all_running(network)
    leader = network.leader()
    followers = [name for name in network.names if name != leader]
    for name in followers:
        network.stop(name, only="node")
    head = network.head(leader)
    # Without a majority the survivor is no longer the minter, and says so.
    wait_until(
        lambda: network.call(leader, "raft_role") == "verifier",
        15,
        f"{leader}, alone, to stop calling itself the minter",
    )
    assert network.try_call(leader, "raft_leader") is None

    # It acknowledges no transaction it cannot deliver (it cannot know the committed
    # head), and no block is made (no split brain).
    account = network.account(leader)
    raw, tx_hash = network.sign_transfer(
        account["private_key"], network.nonce(leader, account["address"])
    )
    with pytest.raises(RpcFailure, match="node is catching up"):
        network.call(leader, "eth_sendRawTransaction", [raw])
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        assert network.head(leader)["hash"] == head["hash"]
        time.sleep(0.2)  # observing that nothing happens for a while, on purpose

    network.start(followers[0], only="node")
    survivors = [leader, followers[0]]
    network.leader(survivors, timeout=30)
    assert network.call(leader, "eth_sendRawTransaction", [raw]) == tx_hash  # now it is
    for name in survivors:
        network.wait_receipt(name, tx_hash, timeout=30)
    network.wait_same_head(survivors)

    network.start(followers[1], only="node")
    network.wait_same_head(timeout=60)
    network.wait_receipt(followers[1], tx_hash)
