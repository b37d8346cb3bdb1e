"""GoQuorum's privacy flags on a real 3-node network, through web3.py: party protection
(1) and private state validation (3) sent with ``privacyFlag`` and signed offline with
``w3.quorum``; mandatory recipients (2) with ``mandatoryFor`` and every refusal; the
auditor's node (a mandatory recipient) reading the full state; a crafted transaction
with the wrong flag, submitted through a node that cannot check it, failing alike on
every party.

Each test deploys its own contract from node1 to the group it names.
"""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi import encode
from eth_keys import keys
from eth_utils import keccak, to_bytes
from web3.exceptions import Web3RPCError

from quorum_node.chain.transactions import QuorumTransactionBuilder, sign_private
from quorum_node.privacy.flags import FLAG_MISMATCH
from tests.privacy.conftest import PrivateNet, artifact
from tx_manager.client import SyncQ2TClient

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def deploy_data(value: int) -> str:
    return artifact("SimpleStorage")["bytecode"] + encode(["uint256"], [value]).hex()


def set_data(value: int) -> str:
    return "0x" + (keccak(text="set(uint256)")[:4] + encode(["uint256"], [value])).hex()


def deploy(net: PrivateNet, private_for: list[str], **privacy: Any) -> str:
    """Contract.constructor(42).transact with the privacy fields; the contract's address."""
    tx_hash = (
        net.contract("node1", "SimpleStorage")
        .constructor(42)
        .transact({"from": net.address("node1"), "privateFor": private_for, **privacy})
    )
    receipt = net.w3("node1").eth.wait_for_transaction_receipt(tx_hash, timeout=30)
    assert receipt["status"] == 1
    net.wait_same_head()
    return str(receipt["contractAddress"])


def value_on(net: PrivateNet, name: str, address: str) -> int:
    return int(net.contract(name, "SimpleStorage", address).functions.get().call())


def refused(net: PrivateNet, message: str, transact: Any) -> None:
    """``transact()`` fails with ``message`` and nothing is sent."""
    nonce_before = net.nonce("node1")
    with pytest.raises(Web3RPCError, match=message):
        transact()
    assert net.nonce("node1") == nonce_before
    assert net.txpool_empty("node1")


def test_party_protection_through_web3(net3: PrivateNet) -> None:
    net = net3
    group = [net.key("node2")]
    address = deploy(net, group, privacyFlag=1)
    storage = net.contract("node1", "SimpleStorage", address)
    account = net.address("node1")
    for name in ("node1", "node2"):
        metadata = net.w3(name).quorum.get_contract_privacy_metadata(address)
        assert (metadata["privacyFlag"], metadata["mandatoryFor"]) == (1, []), name
    assert net.w3("node3").quorum.get_contract_privacy_metadata(address) is None

    for flag in ({}, {"privacyFlag": 0}, {"privacyFlag": 3}):
        refused(
            net,
            FLAG_MISMATCH,
            lambda flag=flag: storage.functions.set(7).transact(
                {"from": account, "privateFor": group, **flag}
            ),
        )
    refused(
        net,
        r"contract not found\. cannot transact",
        lambda: net.w3("node1").eth.send_transaction(
            {
                "from": account,
                "to": net.address("node3"),
                "data": set_data(7),
                "gas": 200_000,
                "privateFor": group,
                "privacyFlag": 1,
            }
        ),
    )

    tx_hash = storage.functions.set(7).transact(
        {"from": account, "privateFor": group, "privacyFlag": 1}
    )
    assert net.w3("node1").eth.wait_for_transaction_receipt(tx_hash, timeout=30)["status"] == 1
    net.wait_same_head()
    assert value_on(net, "node1", address) == value_on(net, "node2", address) == 7


def test_state_validation_through_web3_and_offline_signing(net3: PrivateNet) -> None:
    net = net3
    w3 = net.w3("node1")
    account = net.address("node1")
    group = [net.key("node2")]
    tx_hash = w3.eth.send_transaction(
        {"from": account, "data": deploy_data(42), "privateFor": group, "privacyFlag": 3}
    )
    address = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)["contractAddress"]
    net.wait_same_head()
    assert w3.quorum.get_contract_privacy_metadata(address)["privacyFlag"] == 3

    # signed offline: the flag is fixed with the parties under the payload's hash
    raw = w3.quorum.sign_private_transaction(
        net.private_key("node1"),
        {"to": address, "data": set_data(5), "gas": 200_000, "privateFor": group},
        manager_url=net.tm_url("node1"),
        privacy_flag=3,
    )
    sent = w3.quorum.send_raw_private_transaction(raw, group, privacy_flag=3)
    assert w3.quorum.wait_for_private_receipt(sent)["status"] == 1
    net.wait_same_head()
    assert value_on(net, "node1", address) == value_on(net, "node2", address) == 5

    # signed offline without the flag: refused by the node before distribution
    unflagged = w3.quorum.sign_private_transaction(
        net.private_key("node1"),
        {"to": address, "data": set_data(6), "gas": 200_000, "privateFor": group},
        manager_url=net.tm_url("node1"),
    )
    refused(net, FLAG_MISMATCH, lambda: w3.quorum.send_raw_private_transaction(unflagged, group))
    # a flag-1 creation signed offline, then a flag-1 call: both through w3.quorum
    created = w3.quorum.send_raw_private_transaction(
        w3.quorum.sign_private_transaction(
            net.private_key("node1"),
            {"data": deploy_data(8), "gas": 500_000, "privateFor": group},
            manager_url=net.tm_url("node1"),
            privacy_flag=1,
        ),
        group,
        privacy_flag=1,
    )
    protected = w3.quorum.wait_for_private_receipt(created)["contractAddress"]
    net.wait_same_head()
    assert net.w3("node2").quorum.get_contract_privacy_metadata(protected)["privacyFlag"] == 1
    assert value_on(net, "node2", protected) == 8


def test_mandatory_recipients_through_web3(net3: PrivateNet) -> None:
    """node3 is the auditor: a mandatory recipient of every transaction to the contract."""
    net = net3
    account = net.address("node1")
    key2, key3 = net.key("node2"), net.key("node3")
    group = [key2, key3]
    constructor = net.contract("node1", "SimpleStorage").constructor(42)
    refused(
        net,
        r"missing mandatory recipients data\. if no mandatory recipients required consider "
        r"using PrivacyFlag=1\(PartyProtection\)",
        lambda: constructor.transact({"from": account, "privateFor": group, "privacyFlag": 2}),
    )
    refused(
        net,
        r"privacy metadata invalid\. mandatory recipients are only applicable for "
        r"PrivacyFlag=2\(MandatoryRecipients\)",
        lambda: constructor.transact(
            {"from": account, "privateFor": group, "privacyFlag": 1, "mandatoryFor": [key3]}
        ),
    )
    refused(
        net,
        "One or more mandatory recipients not included in the participant list",
        lambda: constructor.transact(
            {"from": account, "privateFor": [key2], "privacyFlag": 2, "mandatoryFor": [key3]}
        ),
    )

    address = deploy(net, group, privacyFlag=2, mandatoryFor=[key3])
    for name in net.names:
        metadata = net.w3(name).quorum.get_contract_privacy_metadata(address)
        assert (metadata["privacyFlag"], metadata["mandatoryFor"]) == (2, [key3]), name

    storage = net.contract("node1", "SimpleStorage", address)
    refused(
        net,
        "Privacy metadata mismatched with Affected Txn 0x",
        lambda: storage.functions.set(7).transact(
            {"from": account, "privateFor": group, "privacyFlag": 2, "mandatoryFor": [key2]}
        ),
    )
    refused(
        net,
        "missing mandatory recipients data",
        lambda: storage.functions.set(7).transact(
            {"from": account, "privateFor": group, "privacyFlag": 2}
        ),
    )
    refused(
        net,
        FLAG_MISMATCH,
        lambda: storage.functions.set(7).transact(
            {"from": account, "privateFor": group, "privacyFlag": 1}
        ),
    )
    tx_hash = net.w3("node1").quorum.send_transaction(
        {"from": account, "to": address, "data": set_data(7), "gas": 200_000},
        private_for=group,
        privacy_flag=2,
        mandatory_for=[key3],
    )
    assert net.w3("node1").eth.wait_for_transaction_receipt(tx_hash, timeout=30)["status"] == 1
    net.wait_same_head()

    # the auditor's node holds the contract's full state
    roots = {net.w3(name).quorum.storage_root(address) for name in net.names}
    assert len(roots) == 1
    for name in net.names:
        assert value_on(net, name, address) == 7, name
        receipt = net.w3(name).eth.get_transaction_receipt(tx_hash)
        assert receipt["status"] == 1 and len(receipt["logs"]) == 1, name


def test_a_crafted_transaction_with_the_wrong_flag_fails_alike_on_every_party(
    net3: PrivateNet,
) -> None:
    """node1's manager encrypts a flag-0 call to a flag-1 contract of {node1, node2};
    node3 (no party: it cannot check the flag) submits it. Both parties refuse it at
    execution: status 0, the same unchanged state."""
    net = net3
    group = [net.key("node2")]
    address = deploy(net, group, privacyFlag=1)
    roots_before = {name: net.w3(name).quorum.storage_root(address) for name in ("node1", "node2")}
    with SyncQ2TClient(net.tm_url("node1")) as manager:
        payload_hash = manager.send(to_bytes(hexstr=set_data(99)), None, group).key
    unsigned = QuorumTransactionBuilder.create_unsigned_transaction(
        nonce=net.nonce("node1"),
        gas_price=0,
        gas=200_000,
        to=bytes.fromhex(address[2:]),
        value=0,
        data=payload_hash,
    )
    signed = sign_private(unsigned, keys.PrivateKey(bytes.fromhex(net.private_key("node1")[2:])))
    tx_hash = net.call("node3", "eth_sendRawTransaction", ["0x" + signed.encode().hex()])
    net.receipt("node3", tx_hash)
    net.wait_same_head()

    for name in ("node1", "node2"):
        receipt = net.call(name, "eth_getTransactionReceipt", [tx_hash])
        assert (receipt["status"], receipt["logs"]) == ("0x0", []), name
        assert value_on(net, name, address) == 42, name
        assert net.w3(name).quorum.storage_root(address) == roots_before[name], name
    assert roots_before["node1"] == roots_before["node2"]
    outsider = net.call("node3", "eth_getTransactionReceipt", [tx_hash])
    assert outsider["status"] == "0x1"  # a non-party sees the public side only
