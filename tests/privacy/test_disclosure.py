"""Disclosure through real processes (docs/disclosure.md): a party shows a regulator (a
key outside the network) one past private transaction, and a party group's whole
history; ``tx-manager verify-disclosure`` checks them against any node's public
JSON-RPC, and names the step that fails when a bundle was changed."""

from __future__ import annotations

import base64
import copy
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_abi import encode
from eth_utils import keccak

from quorum_node.disclosure.verify import verify_bundle
from quorum_node.privacy.disclosure_bundle import bundle_digest
from quorum_shared.commitments import identity_seed
from tests.privacy.conftest import PrivateNet, artifact, private_network
from tests.privacy.test_audit import audit_entry, group_id
from tests.support.waiting import wait_until
from tx_manager.disclosure import sign_disclosure_digest
from tx_manager.keyfile import read_keypair, write_keypair
from tx_manager.payload import b64encode

#: The shipped artifacts in this checkout; verify-disclosure --abi takes a file.
ARTIFACT_DIR = Path(__file__).resolve().parents[2] / "quorum_node" / "contracts"

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

TM = [sys.executable, "-m", "tx_manager.cli"]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateNet]:
    with private_network(tmp_path_factory.mktemp("disclosure"), 3) as network:
        yield network


@pytest.fixture(scope="module")
def regulator(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, bytes]:
    """A key pair no manager of the network knows: (key file, public key, private key)."""
    directory = tmp_path_factory.mktemp("regulator")
    write_keypair(directory, "regulator", None)
    pair = read_keypair(directory / "regulator.pub", directory / "regulator.key", None)
    return directory / "regulator.key", b64encode(pair.public), pair.private


@pytest.fixture(scope="module")
def deal(net: PrivateNet) -> dict[str, Any]:
    """SimpleStorage in group {node1, node2}, set three times; node3 is no party."""
    others = [net.key("node2")]
    sender = net.address("node1")
    data = artifact("SimpleStorage")["bytecode"] + encode(["uint256"], [1]).hex()

    def send(request: dict[str, Any]) -> dict[str, Any]:
        tx_hash = net.call(
            "node1",
            "eth_sendTransaction",
            [{"from": sender, "privateFor": others, "gas": hex(300_000), **request}],
        )
        return net.receipt("node1", tx_hash)

    creation = send({"data": data})
    contract = creation["contractAddress"]
    writes = []
    for value in (77, 78, 79):
        call = keccak(text="set(uint256)")[:4] + encode(["uint256"], [value])
        writes.append(send({"to": contract, "data": "0x" + call.hex()}))
    group = group_id(net, "node1", "node2")
    last = int(writes[-1]["blockNumber"], 16)

    def agreed() -> int | None:
        entry = audit_entry(net, "node1", group)
        height = entry and entry["agreedHeight"]
        return height if height is not None and height >= last else None

    height = wait_until(agreed, 30, "a height both members signed after the writes")
    return {
        "contract": contract,
        "creation": creation,
        "writes": writes,
        "group": group,
        "height": height,
    }


def resign(net: PrivateNet, name: str, bundle: dict[str, Any]) -> dict[str, Any]:
    """What a discloser could do to a bundle it changed: sign it again. (The tests use it
    to reach the steps after ``signature``.)"""
    directory = net.directory(name) / "tm"
    pair = read_keypair(directory / f"{name}.pub", directory / f"{name}.key", None)
    signer, signature = sign_disclosure_digest(identity_seed(pair.private), bundle_digest(bundle))
    bundle["signature"] = {
        "key": b64encode(pair.public),
        "signer": "0x" + signer.hex(),
        "signature": "0x" + signature.hex(),
    }
    return bundle


def failed_step(bundle: dict[str, Any], private: bytes, net: PrivateNet) -> str | None:
    report = verify_bundle(bundle, private, net.qnet.url("node3"))
    return None if report.ok else report.failed.name  # type: ignore[union-attr]


def test_a_party_discloses_one_transaction_to_a_key_outside_the_network(
    net: PrivateNet, deal: dict[str, Any], regulator: tuple[Path, str, bytes], tmp_path: Path
) -> None:
    key_file, public, _private = regulator
    tx_hash = deal["writes"][0]["transactionHash"]
    bundle = net.w3("node2").quorum.disclose_transaction(tx_hash, public)
    assert bundle["kind"] == "quorum-py/disclosure/transaction/v1"
    assert bundle["transaction"]["receipt"]["status"] == 1
    assert bundle["signature"]["key"] == net.key("node2")
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))

    checked = subprocess.run(
        [
            *TM,
            "verify-disclosure",
            "--bundle",
            str(path),
            "--key",
            str(key_file),
            "--rpc",
            net.qnet.url("node3"),  # any node: node3 is no party
            "--abi",
            str(ARTIFACT_DIR / "SimpleStorage.json"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "set(" in checked.stdout and "77" in checked.stdout
    for step in ("signature", "chain", "payload-hash", "envelope-hash", "key-commitment"):
        assert f"ok   {step}" in checked.stdout


def test_a_non_party_cannot_disclose(
    net: PrivateNet, deal: dict[str, Any], regulator: tuple[Path, str, bytes]
) -> None:
    error = net.error(
        "node3", "quorum_discloseTransaction", [deal["writes"][0]["transactionHash"], regulator[1]]
    )
    assert "not a party" in error["message"]
    bad = net.error(
        "node1", "quorum_discloseTransaction", [deal["writes"][0]["transactionHash"], "nope"]
    )
    assert bad["code"] == -32602


def test_each_step_fails_on_its_own(
    net: PrivateNet, deal: dict[str, Any], regulator: tuple[Path, str, bytes]
) -> None:
    _key_file, public, private = regulator
    first = net.call(
        "node1", "quorum_discloseTransaction", [deal["writes"][0]["transactionHash"], public]
    )
    second = net.call(
        "node1", "quorum_discloseTransaction", [deal["writes"][1]["transactionHash"], public]
    )
    assert failed_step(first, private, net) is None

    unsigned = copy.deepcopy(first)
    unsigned["transaction"]["receipt"]["status"] = 0
    assert failed_step(unsigned, private, net) == "signature"

    wrong_block = copy.deepcopy(first)
    wrong_block["transaction"]["blockNumber"] += 1
    assert failed_step(resign(net, "node1", wrong_block), private, net) == "chain"

    changed = copy.deepcopy(first)
    cipher = bytearray(base64.b64decode(changed["transaction"]["envelope"]["cipherText"]))
    cipher[0] ^= 1
    changed["transaction"]["envelope"]["cipherText"] = base64.b64encode(bytes(cipher)).decode()
    assert failed_step(resign(net, "node1", changed), private, net) == "envelope-hash"

    other_key = copy.deepcopy(first)
    other_key["transaction"]["envelope"]["wrappedKey"] = second["transaction"]["envelope"][
        "wrappedKey"
    ]
    assert failed_step(resign(net, "node1", other_key), private, net) == "key-unwrap"

    # the same bundle is no proof for another recipient
    stranger = read_keypair(*_new_pair(Path(_key_file).parent / "stranger"))
    assert failed_step(first, stranger.private, net) in ("signature", "key-unwrap")


def _new_pair(directory: Path) -> tuple[Path, Path, None]:
    directory.mkdir(exist_ok=True)
    write_keypair(directory, "stranger", None)
    return directory / "stranger.pub", directory / "stranger.key", None


def test_a_group_history_replays_to_the_root_every_member_signed(
    net: PrivateNet, deal: dict[str, Any], regulator: tuple[Path, str, bytes], tmp_path: Path
) -> None:
    key_file, public, private = regulator
    bundle = net.w3("node1").quorum.disclose_group(deal["group"], deal["height"], public)
    assert bundle["kind"] == "quorum-py/disclosure/group/v1"
    assert len(bundle["transactions"]) == 4
    assert len(bundle["commitments"]) == 2
    report = verify_bundle(bundle, private, net.qnet.url("node3"))
    assert report.ok, report.to_json()
    assert "replay" in [step.name for step in report.steps]

    path = tmp_path / "group.json"
    path.write_text(json.dumps(bundle))
    checked = subprocess.run(
        [
            *TM,
            "verify-disclosure",
            "--bundle",
            str(path),
            "--key",
            str(key_file),
            "--rpc",
            net.qnet.url("node2"),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert json.loads(checked.stdout)["ok"] is True

    # one transaction dropped: the replay departs where it was, though re-signed
    dropped = copy.deepcopy(bundle)
    del dropped["transactions"][2]
    report = verify_bundle(resign(net, "node1", dropped), private, net.qnet.url("node3"))
    assert report.failed is not None and report.failed.name == "replay"
    assert f"after block {bundle['transactions'][2]['blockNumber']}" in report.failed.detail

    # two transactions swapped
    swapped = copy.deepcopy(bundle)
    txs = swapped["transactions"]
    txs[1], txs[2] = txs[2], txs[1]
    assert failed_step(resign(net, "node1", swapped), private, net) == "order"

    # a member's commitment left out
    partial = copy.deepcopy(bundle)
    partial["commitments"] = partial["commitments"][:1]
    assert failed_step(resign(net, "node1", partial), private, net) == "commitments"


def test_a_height_not_every_member_signed_is_refused(
    net: PrivateNet, deal: dict[str, Any], regulator: tuple[Path, str, bytes]
) -> None:
    error = net.error(
        "node1", "quorum_discloseGroup", [deal["group"], hex(deal["height"] + 10_000), regulator[1]]
    )
    assert "signed" in error["message"]
