"""Durability of a node's chain: every receipt the node returned survives kill -9, and a
restart on the same data directory carries on from the head it had.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from tests.support.node_process import TEST_KEYS, NodeProcess, rpc, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RECIPIENT = "0x" + "42" * 20
SENDERS = [Account.from_key(key) for key in TEST_KEYS[:4]]
TRANSACTIONS_PER_ROUND = 24
RECEIPT_FIELDS = (
    "blockHash",
    "blockNumber",
    "transactionIndex",
    "status",
    "gasUsed",
    "cumulativeGasUsed",
    "from",
    "to",
    "logs",
)


def batch(
    url: str, calls: list[tuple[str, list[Any]]], timeout: float = 10.0
) -> list[dict[str, Any]]:
    """One JSON-RPC batch; responses in the order of ``calls``."""
    body = json.dumps(
        [
            {"jsonrpc": "2.0", "id": index, "method": method, "params": params}
            for index, (method, params) in enumerate(calls)
        ]
    ).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        answers = json.loads(response.read())
    return sorted(answers, key=lambda answer: answer["id"])


@dataclass
class Load:
    """Signed transfers sent continuously, and the receipts the node returned for them."""

    url: str
    chain_id: int
    nonces: dict[str, int]
    receipts: dict[str, dict[str, Any]] = field(default_factory=dict)
    outstanding: list[str] = field(default_factory=list)
    sent: int = 0
    errors: list[str] = field(default_factory=list)
    stopped_by: BaseException | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _signed_round(self) -> list[tuple[str, list[Any]]]:
        calls = []
        for index in range(TRANSACTIONS_PER_ROUND):
            sender = SENDERS[index % len(SENDERS)]
            nonce = self.nonces[sender.address]
            self.nonces[sender.address] = nonce + 1
            signed = sender.sign_transaction(
                {
                    "to": RECIPIENT,
                    "value": 1,
                    "gas": 21_000,
                    "gasPrice": 0,
                    "nonce": nonce,
                    "chainId": self.chain_id,
                }
            )
            calls.append(("eth_sendRawTransaction", ["0x" + signed.raw_transaction.hex()]))
        return calls

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                for answer in batch(self.url, self._signed_round()):
                    if "error" in answer:
                        self.errors.append(answer["error"]["message"])
                    else:
                        self.outstanding.append(answer["result"])
                self.sent += TRANSACTIONS_PER_ROUND
                if self.outstanding:
                    answers = batch(
                        self.url,
                        [("eth_getTransactionReceipt", [h]) for h in self.outstanding],
                    )
                    still_waiting = []
                    for tx_hash, answer in zip(self.outstanding, answers, strict=True):
                        if answer.get("result") is not None:
                            with self.lock:
                                self.receipts[tx_hash] = answer["result"]
                        else:
                            still_waiting.append(tx_hash)
                    self.outstanding = still_waiting
        except (OSError, http.client.HTTPException, json.JSONDecodeError) as exc:
            # the node was killed under us: what was returned before is what counts
            self.stopped_by = exc
        except BaseException as exc:  # noqa: BLE001 - reported by the test, not lost in a thread
            self.errors.append(repr(exc))

    def confirmed(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            return dict(self.receipts)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[NodeProcess]:
    node = NodeProcess(tmp_path / "data")
    try:
        yield node.start()
    finally:
        node.stop()


def head(url: str) -> dict[str, Any]:
    return rpc(url, "eth_getBlockByNumber", ["latest", False])["result"]  # type: ignore[no-any-return]


def test_receipts_returned_before_kill_9_survive_restart(node: NodeProcess) -> None:
    chain_id = int(rpc(node.http_url, "eth_chainId")["result"], 16)
    nonces = {
        sender.address: int(
            rpc(node.http_url, "eth_getTransactionCount", [sender.address, "latest"])["result"], 16
        )
        for sender in SENDERS
    }
    load = Load(node.http_url, chain_id, nonces)
    thread = threading.Thread(target=load.run, name="load", daemon=True)
    started = time.monotonic()
    thread.start()
    try:
        # a few seconds of load, with a good number of receipts seen, then kill -9 mid-stream
        wait_until(
            lambda: (
                time.monotonic() - started > 2.5
                and len(load.confirmed()) >= 200
                or not thread.is_alive()
            ),
            60,
            "receipts under load",
        )
        assert thread.is_alive(), f"the load stopped early: {load.stopped_by!r} {load.errors[:3]}"
        node.kill()
        thread.join(timeout=30)
        assert not thread.is_alive()
    finally:
        load.stop.set()
        thread.join(timeout=30)
    assert load.errors == [], load.errors[:5]
    confirmed = load.confirmed()
    assert len(confirmed) >= 200
    # the kill hit mid-stream: the load was cut off by it, not stopped by the test
    assert load.stopped_by is not None
    print(f"sent {load.sent}, receipts {len(confirmed)}, in flight {len(load.outstanding)}")
    highest_seen = max(int(receipt["blockNumber"], 16) for receipt in confirmed.values())

    node.start()
    url = node.http_url
    assert int(head(url)["number"], 16) >= highest_seen
    hashes = list(confirmed)
    for start in range(0, len(hashes), 500):
        chunk = hashes[start : start + 500]
        answers = batch(url, [("eth_getTransactionReceipt", [h]) for h in chunk], timeout=30)
        for tx_hash, answer in zip(chunk, answers, strict=True):
            after = answer["result"]
            assert after is not None, f"receipt of {tx_hash} lost in the kill"
            before = confirmed[tx_hash]
            assert {k: after[k] for k in RECEIPT_FIELDS} == {k: before[k] for k in RECEIPT_FIELDS}
    # the blocks those receipts name are the canonical ones
    block_hashes = {receipt["blockNumber"]: receipt["blockHash"] for receipt in confirmed.values()}
    numbers = sorted(block_hashes)
    answers = batch(url, [("eth_getBlockByNumber", [n, False]) for n in numbers], timeout=30)
    assert [answer["result"]["hash"] for answer in answers] == [block_hashes[n] for n in numbers]

    # what it acknowledged but had not mined yet comes back from its journal, mined
    for tx_hash in load.outstanding:
        wait_until(
            lambda h=tx_hash: rpc(url, "eth_getTransactionReceipt", [h])["result"],
            30,
            f"acknowledged {tx_hash} mined after the restart",
        )

    # and the node carries on: a new transaction from each sender lands in a new block
    head_before = int(head(url)["number"], 16)
    new_hashes = []
    for sender in SENDERS:
        nonce = int(rpc(url, "eth_getTransactionCount", [sender.address, "pending"])["result"], 16)
        signed = sender.sign_transaction(
            {
                "to": RECIPIENT,
                "value": 1,
                "gas": 21_000,
                "gasPrice": 0,
                "nonce": nonce,
                "chainId": chain_id,
            }
        )
        answer = rpc(url, "eth_sendRawTransaction", ["0x" + signed.raw_transaction.hex()])
        assert "result" in answer, answer
        new_hashes.append(answer["result"])
    receipts = [
        wait_until(lambda h=h: rpc(url, "eth_getTransactionReceipt", [h])["result"], 20, "receipt")
        for h in new_hashes
    ]
    assert all(receipt["status"] == "0x1" for receipt in receipts)
    assert min(int(receipt["blockNumber"], 16) for receipt in receipts) > head_before


def test_restart_after_graceful_stop_keeps_head_and_dev_account(node: NodeProcess) -> None:
    url = node.http_url
    dev_account = rpc(url, "eth_accounts")["result"][0]
    sent = rpc(url, "eth_sendTransaction", [{"from": dev_account, "to": RECIPIENT, "value": "0x5"}])
    receipt = wait_until(
        lambda: rpc(url, "eth_getTransactionReceipt", [sent["result"]])["result"], 20, "a receipt"
    )
    head_before = head(url)
    balance_before = rpc(url, "eth_getBalance", [RECIPIENT, "latest"])["result"]

    node.stop()
    node.start()
    url = node.http_url
    assert head(url) == head_before
    assert rpc(url, "eth_accounts")["result"][0] == dev_account
    assert rpc(url, "eth_getTransactionReceipt", [sent["result"]])["result"] == receipt
    assert rpc(url, "eth_getBalance", [RECIPIENT, "latest"])["result"] == balance_before

    # the dev account still signs, and blocks follow the old head
    again = rpc(
        url, "eth_sendTransaction", [{"from": dev_account, "to": RECIPIENT, "value": "0x1"}]
    )
    assert "result" in again, again
    new_receipt = wait_until(
        lambda: rpc(url, "eth_getTransactionReceipt", [again["result"]])["result"], 20, "a receipt"
    )
    assert int(new_receipt["blockNumber"], 16) == int(head_before["number"], 16) + 1
    new_block = rpc(url, "eth_getBlockByNumber", [new_receipt["blockNumber"], False])["result"]
    assert new_block["parentHash"] == head_before["hash"]
