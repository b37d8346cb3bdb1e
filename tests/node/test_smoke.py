"""A first flow through web3.py against a real node process."""

from __future__ import annotations

import pytest
from web3 import Web3

from quorum_node import contracts
from tests.support.node_process import NodeProcess

pytestmark = pytest.mark.integration


def test_deploy_call_transact_and_events(dev_node: NodeProcess) -> None:
    w3 = Web3(Web3.HTTPProvider(dev_node.http_url))
    account = w3.eth.accounts[0]
    artifact = contracts.artifact("SimpleStorage")
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    receipt = w3.eth.wait_for_transaction_receipt(
        factory.constructor(42).transact({"from": account})
    )
    assert receipt.status == 1
    contract = w3.eth.contract(address=receipt.contractAddress, abi=artifact["abi"])
    assert contract.functions.get().call() == 42
    receipt = w3.eth.wait_for_transaction_receipt(
        contract.functions.set(7).transact({"from": account})
    )
    (event,) = contract.events.Stored().process_receipt(receipt)
    assert event.args.value == 7 and event.args.by == account
    assert contract.functions.get().call() == 7
    logs = contract.events.Stored.get_logs(from_block=0)
    assert [log.args.value for log in logs] == [42, 7]
