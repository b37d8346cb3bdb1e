"""No node or manager blocks its event loop under load.

A 3-node network with its managers runs with ``tests/support/loop_watchdog`` loaded into
every process: it reports any asyncio callback that spends more than 100 ms of the loop
thread's CPU time. Meanwhile the network carries public transfers from every node in
JSON-RPC batches (forwarded to the Raft leader, built, pushed, imported by followers),
concurrent private sends from two accounts (nonce reservation, the managers' push,
encryption and decryption), and reads (full blocks, logs, private calls). Afterwards no
process has reported a blocked loop.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from eth_abi import encode
from eth_account import Account
from eth_utils import keccak

from tests.privacy.conftest import PrivateNet, artifact, private_network
from tests.support.node_process import rpc

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WATCHDOG = Path(__file__).resolve().parents[1] / "support" / "loop_watchdog"
TRANSFERS_PER_NODE = 200
BATCH = 50
PRIVATE_SENDS_PER_NODE = 30


@pytest.fixture
def watched_net(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[PrivateNet, Path]]:
    report = tmp_path_factory.mktemp("watchdog") / "blocked.txt"
    report.touch()
    monkeypatch.setenv("QUORUM_LOOP_WATCHDOG_FILE", str(report))
    monkeypatch.setenv("QUORUM_LOOP_WATCHDOG_MS", "100")
    monkeypatch.setenv("PYTHONPATH", str(WATCHDOG))
    with private_network(tmp_path_factory.mktemp("watched"), 3) as net:
        yield net, report


def _transfers(net: PrivateNet, key: str) -> list[tuple[str, str]]:
    """(raw, hash) of transfers signed by ``key`` (a fresh, funded account), nonces from 0."""
    first = 0
    chain_id = int(net.call("node1", "eth_chainId"), 16)
    signed = []
    for offset in range(TRANSFERS_PER_NODE):
        transaction = Account.sign_transaction(
            {
                "to": "0x" + "22" * 20,
                "value": 1,
                "gas": 21_000,
                "gasPrice": 0,
                "nonce": first + offset,
                "chainId": chain_id,
            },
            key,
        )
        signed.append(("0x" + transaction.raw_transaction.hex(), "0x" + transaction.hash.hex()))
    return signed


def _send_batches(url: str, signed: list[tuple[str, str]]) -> None:
    for start in range(0, len(signed), BATCH):
        batch = [
            {"jsonrpc": "2.0", "id": index, "method": "eth_sendRawTransaction", "params": [raw]}
            for index, (raw, _) in enumerate(signed[start : start + BATCH])
        ]
        body = rpc_batch(url, batch)
        errors = [item["error"] for item in body if "error" in item]
        assert not errors, errors[:3]


def rpc_batch(url: str, batch: list[dict[str, object]]) -> list[dict[str, object]]:
    request = urllib.request.Request(
        url, data=json.dumps(batch).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return list(json.loads(response.read()))


@pytest.mark.timeout(600)
def test_no_event_loop_is_blocked_under_load(watched_net: tuple[PrivateNet, Path]) -> None:
    net, report = watched_net
    storage = artifact("SimpleStorage")
    deploy = net.call(
        "node1",
        "eth_sendTransaction",
        [
            {
                "from": net.address("node1"),
                "data": storage["bytecode"] + encode(["uint256"], [1]).hex(),
                "privateFor": [net.key("node2")],
            }
        ],
    )
    contract = net.receipt("node1", deploy)["contractAddress"]
    set_selector = keccak(text="set(uint256)")[:4]

    def private_sends(name: str) -> list[str]:
        def one(value: int) -> str:
            data = "0x" + (set_selector + encode(["uint256"], [value])).hex()
            others = [net.key(other) for other in ("node1", "node2") if other != name]
            return str(
                net.call(
                    name,
                    "eth_sendTransaction",
                    [
                        {
                            "from": net.address(name),
                            "to": contract,
                            "data": data,
                            "privateFor": others,
                        }
                    ],
                )
            )

        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(one, range(PRIVATE_SENDS_PER_NODE)))

    stop_reading = threading.Event()

    def reads() -> int:
        count = 0
        while not stop_reading.is_set():
            for name in net.names:
                rpc(net.qnet.url(name), "eth_getBlockByNumber", ["latest", True])
                rpc(net.qnet.url(name), "eth_getLogs", [{"fromBlock": "0x0", "toBlock": "latest"}])
            rpc(net.qnet.url("node2"), "eth_call", [{"to": contract, "data": "0x6d4ce63c"}])
            count += 1
            stop_reading.wait(0.1)  # a client reading now and then, not a flood
        return count

    # Public load from fresh accounts (the nodes' own accounts send the private load).
    senders = {name: Account.create() for name in net.names}
    funding = [
        net.call(
            "node3",
            "eth_sendTransaction",
            [{"from": net.address("node3"), "to": account.address, "value": hex(10**18)}],
        )
        for account in senders.values()
    ]
    for tx_hash in funding:
        # every node admits its batch against its own head: each must hold the funding
        for name in net.names:
            assert net.receipt(name, tx_hash)["status"] == "0x1"
    signed = {name: _transfers(net, senders[name].key.hex()) for name in net.names}
    report.write_text("")  # what start-up did is not under load
    with ThreadPoolExecutor(8) as pool:
        reader = pool.submit(reads)
        try:
            public = [pool.submit(_send_batches, net.qnet.url(n), signed[n]) for n in net.names]
            private = [pool.submit(private_sends, name) for name in ("node1", "node2")]
            for future in public:
                future.result()
            private_hashes = {
                name: f.result() for name, f in zip(("node1", "node2"), private, strict=True)
            }
            last = {name: signed[name][-1][1] for name in net.names}
            for name, tx_hash in last.items():
                assert net.receipt(name, tx_hash, timeout=180)["status"] == "0x1"
            for name, hashes in private_hashes.items():
                for tx_hash in hashes:
                    assert net.receipt(name, tx_hash, timeout=120)["status"] == "0x1"
        finally:
            stop_reading.set()  # also when a send failed: the pool waits for the reader
        assert reader.result() > 0

    net.wait_same_head()
    blocked = report.read_text().strip()
    assert blocked == "", f"event loops blocked for more than 100 ms of CPU:\n{blocked}"
