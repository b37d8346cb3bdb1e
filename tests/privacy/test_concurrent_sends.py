"""Concurrent sends from one account, through a real node and manager over HTTP: each gets
its own nonce (geth's per-account nonce lock), public or private, and all are mined.

Before the lock, 64 concurrent public sends from one account failed 59 times with
"replacement transaction underpriced", and 24 concurrent private deploys failed 18
times, each after its payload had been pushed.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from eth_abi import encode

from tests.privacy.conftest import artifact
from tests.support.localnet import ManagerFactory
from tests.support.node_process import NodeProcess, rpc, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def node_with_manager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    root = tmp_path_factory.mktemp("concurrent")
    managers = ManagerFactory(root / "managers")
    node = None
    try:
        manager = managers.start("solo")
        node = NodeProcess(root / "node", extra_args=["--tm-url", manager.q2t]).start()
        yield node
    finally:
        if node is not None:
            node.stop()
        managers.stop_all()


def _sender(node: NodeProcess) -> str:
    return str(rpc(node.http_url, "eth_accounts")["result"][0])


def _send_concurrently(node: NodeProcess, requests: list[dict[str, Any]]) -> list[str]:
    def send(request: dict[str, Any]) -> str:
        answer = rpc(node.http_url, "eth_sendTransaction", [request])
        assert "result" in answer, answer
        return str(answer["result"])

    with ThreadPoolExecutor(len(requests)) as pool:
        return list(pool.map(send, requests))


def _mined_nonces(node: NodeProcess, hashes: list[str]) -> list[int]:
    for tx_hash in hashes:
        receipt = wait_until(
            lambda h=tx_hash: rpc(node.http_url, "eth_getTransactionReceipt", [h])["result"],
            60,
            f"a receipt for {tx_hash}",
        )
        assert receipt["status"] == "0x1", receipt
    return [
        int(rpc(node.http_url, "eth_getTransactionByHash", [h])["result"]["nonce"], 16)
        for h in hashes
    ]


def _nonce(node: NodeProcess, address: str) -> int:
    return int(rpc(node.http_url, "eth_getTransactionCount", [address, "latest"])["result"], 16)


def test_64_concurrent_public_sends_from_one_account(node_with_manager: NodeProcess) -> None:
    node = node_with_manager
    sender = _sender(node)
    first = _nonce(node, sender)
    hashes = _send_concurrently(
        node, [{"from": sender, "to": "0x" + "33" * 20, "value": hex(1)} for _ in range(64)]
    )
    nonces = _mined_nonces(node, hashes)
    assert sorted(nonces) == list(range(first, first + 64))
    assert _nonce(node, sender) == first + 64


def test_24_concurrent_private_deploys_from_one_account(node_with_manager: NodeProcess) -> None:
    node = node_with_manager
    sender = _sender(node)
    first = _nonce(node, sender)
    bytecode = artifact("SimpleStorage")["bytecode"]
    hashes = _send_concurrently(
        node,
        [
            {
                "from": sender,
                "data": bytecode + encode(["uint256"], [value]).hex(),
                "privateFor": [],
            }
            for value in range(24)
        ],
    )
    nonces = _mined_nonces(node, hashes)
    assert sorted(nonces) == list(range(first, first + 24))
    # Each deploy ran privately with its own argument: every contract holds its value.
    for value, tx_hash in enumerate(hashes):
        receipt = rpc(node.http_url, "eth_getTransactionReceipt", [tx_hash])["result"]
        stored = rpc(
            node.http_url, "eth_call", [{"to": receipt["contractAddress"], "data": "0x6d4ce63c"}]
        )
        assert int(stored["result"], 16) == value
