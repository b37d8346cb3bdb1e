"""What an ethers v6 user does, against a real node: runs tests/js/flow.mjs with Node.js
and checks the one JSON line of results it prints.

ethers is pinned in tests/js/package.json and installed by ``npm ci`` on first use; the
test is skipped (with the reason) when Node.js or npm is missing or the install fails.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from web3 import Web3

from tests.support.node_process import TEST_KEYS, NodeProcess

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
JS_DIR = ROOT / "tests" / "js"
ARTIFACTS = ROOT / "quorum_node" / "contracts"


@pytest.fixture(scope="module")
def node_binary() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("Node.js and npm are needed for the ethers flow (not on PATH)")
    if not (JS_DIR / "node_modules" / "ethers" / "package.json").exists():
        try:
            installed = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--silent"],
                cwd=JS_DIR,
                capture_output=True,
                text=True,
                timeout=300,
            )
        except subprocess.TimeoutExpired:
            pytest.skip("npm ci in tests/js timed out (offline?)")
        if installed.returncode != 0:
            pytest.skip(f"npm ci in tests/js failed (offline?): {installed.stderr.strip()[-500:]}")
    return node


@pytest.fixture(scope="module")
def results(node_binary: str, dev_node: NodeProcess) -> dict[str, Any]:
    completed = subprocess.run(
        [
            node_binary,
            str(JS_DIR / "flow.mjs"),
            dev_node.http_url,
            dev_node.ws_url,
            "0x" + TEST_KEYS[0].hex(),
            str(ARTIFACTS),
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert completed.returncode == 0, f"flow.mjs failed:\n{completed.stderr[-4000:]}"
    lines = completed.stdout.strip().splitlines()
    assert lines, f"flow.mjs printed nothing:\n{completed.stderr[-2000:]}"
    return json.loads(lines[-1])  # type: ignore[no-any-return]


def test_network_accounts_and_batched_reads(results: dict[str, Any], dev_node: NodeProcess) -> None:
    w3 = Web3(Web3.HTTPProvider(dev_node.http_url))
    assert results["chainId"] == w3.eth.chain_id
    assert results["walletAddress"] == Account.from_key(TEST_KEYS[0]).address
    assert results["nodeAccount"] == w3.eth.accounts[0]
    assert results["walletBalancePositive"] and results["latestHasHash"]


def test_deploy_call_transact_and_events(results: dict[str, Any], dev_node: NodeProcess) -> None:
    assert results["deployStatus"] == 1 and results["setStatus"] == 1
    assert results["initialValue"] == 42 and results["valueAfterSet"] == 7
    assert results["setEvent"] == {"name": "Stored", "by": results["walletAddress"], "value": 7}
    assert results["queriedValues"] == [42, 7]
    assert results["queriedBy"] == [results["walletAddress"]]
    # what ethers reported is what the node holds
    w3 = Web3(Web3.HTTPProvider(dev_node.http_url))
    receipt = w3.eth.get_transaction_receipt(results["setTxHash"])
    assert receipt["from"] == results["walletAddress"] and receipt.to == results["storageAddress"]
    assert w3.eth.get_code(results["storageAddress"]) != b""


def test_node_account_deploys_and_transfers_token(results: dict[str, Any]) -> None:
    assert results["transferEvent"] == {
        "from": results["nodeAccount"],
        "to": results["walletAddress"],
        "value": str(5 * 10**18),
    }
    assert results["walletTokenBalance"] == str(5 * 10**18)


def test_revert_reason(results: dict[str, Any]) -> None:
    expected = {"code": "CALL_EXCEPTION", "reason": "Token: insufficient balance"}
    assert results["callRevert"] == expected
    assert results["sendRevert"] == expected


def test_websocket_block_event(results: dict[str, Any], dev_node: NodeProcess) -> None:
    assert results["wsBlockAboveStart"]
    w3 = Web3(Web3.HTTPProvider(dev_node.http_url))
    assert results["wsBlock"] <= w3.eth.block_number
    assert results["finalValue"] == 8
