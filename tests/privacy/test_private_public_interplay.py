"""Private and public contracts calling each other (GoQuorum's rules).

* A private contract may read a public one: its reads see the live public state.
* It may not change one: the private transaction fails (status 0 on the parties) and
  the public contract is unchanged everywhere.
* A public contract sees nothing of private state: a private contract's address has no
  code for it, so calling through it reverts on every node, parties included.
"""

from __future__ import annotations

from typing import Any

import pytest
from web3.exceptions import BadFunctionCallOutput, ContractLogicError

from tests.privacy.conftest import PrivateNet

pytestmark = pytest.mark.integration

PARTIES = ("node1", "node2")
OUTSIDER = "node3"


def deploy_public(net: PrivateNet, artifact_name: str, *args: Any) -> str:
    w3 = net.w3("node1")
    tx_hash = (
        net.contract("node1", artifact_name)
        .constructor(*args)
        .transact({"from": net.address("node1")})
    )
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
    assert receipt["status"] == 1
    return str(receipt["contractAddress"])


def deploy_private(net: PrivateNet, artifact_name: str, *args: Any) -> str:
    w3 = net.w3("node1")
    tx_hash = (
        net.contract("node1", artifact_name)
        .constructor(*args)
        .transact({"from": net.address("node1"), "privateFor": [net.key("node2")]})
    )
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
    assert receipt["status"] == 1
    return str(receipt["contractAddress"])


def counts(net: PrivateNet, counter: str) -> dict[str, int]:
    return {
        name: net.contract(name, "Counter", counter).functions.count().call() for name in net.names
    }


def test_private_contract_reads_public_state_and_cannot_write_it(net3: PrivateNet) -> None:
    net = net3
    account = net.address("node1")
    counter = deploy_public(net, "Counter")
    public_counter = net.contract("node1", "Counter", counter)
    net.w3("node1").eth.wait_for_transaction_receipt(
        public_counter.functions.increment().transact({"from": account}), timeout=30
    )
    caller = deploy_private(net, "CounterCaller", counter)
    net.wait_same_head()
    assert counts(net, counter) == {name: 1 for name in net.names}

    for name in PARTIES:
        private_caller = net.contract(name, "CounterCaller", caller)
        assert private_caller.functions.target().call() == counter
        assert private_caller.functions.readTarget().call() == 1, name
    with pytest.raises(BadFunctionCallOutput):  # the outsider has no such contract
        net.contract(OUTSIDER, "CounterCaller", caller).functions.readTarget().call()

    # reads follow the live public state
    net.w3("node1").eth.wait_for_transaction_receipt(
        public_counter.functions.increment().transact({"from": account}), timeout=30
    )
    net.wait_same_head()
    for name in PARTIES:
        assert net.contract(name, "CounterCaller", caller).functions.readTarget().call() == 2

    # a write into public state fails on the parties and changes nothing anywhere
    write = net.contract("node1", "CounterCaller", caller).functions.writeTarget()
    head_before = net.qnet.head_number("node1")
    tx_hash = write.transact({"from": account, "privateFor": [net.key("node2")], "gas": 300_000})
    net.w3("node1").eth.wait_for_transaction_receipt(tx_hash, timeout=30)
    net.wait_same_head()
    for name in net.names:
        receipt = net.w3(name).eth.get_transaction_receipt(tx_hash)
        assert receipt["status"] == (0 if name in PARTIES else 1), name
        assert receipt["logs"] == [], name
    assert counts(net, counter) == {name: 2 for name in net.names}
    assert net.qnet.head_number("node1") > head_before
    # the public contract's storage is untouched on every node
    for name in net.names:
        assert int.from_bytes(net.w3(name).eth.get_storage_at(counter, 0), "big") == 2

    # estimating the write against the group's state fails as the execution would
    with pytest.raises(ContractLogicError):
        write.estimate_gas({"from": account, "privateFor": [net.key("node2")]})  # type: ignore[typeddict-unknown-key]


def test_public_contract_sees_no_private_state(net3: PrivateNet) -> None:
    net = net3
    account = net.address("node1")
    private_counter = deploy_private(net, "Counter")
    party_counter = net.contract("node1", "Counter", private_counter)
    net.w3("node1").eth.wait_for_transaction_receipt(
        party_counter.functions.increment().transact(
            {"from": account, "privateFor": [net.key("node2")]}
        ),
        timeout=30,
    )
    public_caller = deploy_public(net, "CounterCaller", private_counter)
    net.wait_same_head()
    for name in PARTIES:
        assert net.contract(name, "Counter", private_counter).functions.count().call() == 1

    for name in net.names:
        caller = net.contract(name, "CounterCaller", public_caller)
        assert caller.functions.target().call() == private_counter
        # the private Counter has no code in public state: Solidity's call reverts
        with pytest.raises(ContractLogicError):
            caller.functions.readTarget().call()

    write = net.contract("node1", "CounterCaller", public_caller).functions.writeTarget()
    tx_hash = write.transact({"from": account, "gas": 300_000})
    net.w3("node1").eth.wait_for_transaction_receipt(tx_hash, timeout=30)
    net.wait_same_head()
    for name in net.names:
        receipt = net.w3(name).eth.get_transaction_receipt(tx_hash)
        assert receipt["status"] == 0, name
    for name in PARTIES:
        assert net.contract(name, "Counter", private_counter).functions.count().call() == 1
    assert net.w3(OUTSIDER).eth.get_code(private_counter) == b""


def test_private_transaction_straight_to_a_public_contract_fails(net3: PrivateNet) -> None:
    """Private transactions run in their group's state and may not write public state, also
    when they call a public contract directly rather than through a private one."""
    net = net3
    account = net.address("node1")
    counter = deploy_public(net, "Counter")
    increment = net.contract("node1", "Counter", counter).functions.increment()
    tx_hash = increment.transact(
        {"from": account, "privateFor": [net.key("node2")], "gas": 300_000}
    )
    net.w3("node1").eth.wait_for_transaction_receipt(tx_hash, timeout=30)
    net.wait_same_head()
    for name in net.names:
        receipt = net.w3(name).eth.get_transaction_receipt(tx_hash)
        assert receipt["status"] == (0 if name in PARTIES else 1), name
    assert counts(net, counter) == {name: 0 for name in net.names}


def test_public_transaction_to_a_private_contract_address_changes_nothing_private(
    net3: PrivateNet,
) -> None:
    net = net3
    account = net.address("node1")
    storage_address = deploy_private(net, "SimpleStorage", 42)
    public_view = net.contract("node1", "SimpleStorage", storage_address)
    tx_hash = public_view.functions.set(9).transact({"from": account, "gas": 300_000})
    receipt = net.w3("node1").eth.wait_for_transaction_receipt(tx_hash, timeout=30)
    net.wait_same_head()
    assert receipt["logs"] == []  # in public state the address has no code: a plain call
    for name in PARTIES:
        storage = net.contract(name, "SimpleStorage", storage_address)
        assert storage.functions.get().call() == 42, name
    assert net.w3(OUTSIDER).eth.get_code(storage_address) == b""


def test_failed_private_creation_reports_failure_on_parties_only(net3: PrivateNet) -> None:
    """A creation whose code fails (0xfe, INVALID): status 0 on the parties, with the
    address it would have had; status 1 on the non-party; no contract anywhere."""
    net = net3
    tx_hash = net.call(
        "node1",
        "eth_sendTransaction",
        [
            {
                "from": net.address("node1"),
                "data": "0xfe",
                "gas": "0x30000",
                "privateFor": [net.key("node2")],
            }
        ],
    )
    net.receipt("node1", tx_hash)
    net.wait_same_head()
    addresses = set()
    for name in net.names:
        receipt = net.call(name, "eth_getTransactionReceipt", [tx_hash])
        assert receipt["status"] == ("0x0" if name in PARTIES else "0x1"), name
        assert receipt["logs"] == []
        addresses.add(receipt["contractAddress"])
        assert net.call(name, "eth_getCode", [receipt["contractAddress"], "latest"]) == "0x"
        assert (
            net.call(name, "eth_getContractPrivacyMetadata", [receipt["contractAddress"]]) is None
        )
    assert len(addresses) == 1 and None not in addresses
