"""The chain state web3.py's reusable suites (``web3._utils.module_testing``) expect.

web3.py runs those suites against a geth data directory prepared by a script
(``tests/integration/generate_fixtures``): its test contracts deployed from a keyfile
account, a transaction that emitted a log, an empty block and a block holding one
transfer. ``prepare_chain`` builds the same state on a fresh quorum-py node through
ordinary JSON-RPC, and returns where everything ended up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_typing import ChecksumAddress
from hexbytes import HexBytes
from web3 import Web3
from web3._utils.contract_sources.contract_data._custom_contract_data import EMITTER_ENUM
from web3._utils.contract_sources.contract_data.emitter_contract import EMITTER_CONTRACT_DATA
from web3._utils.contract_sources.contract_data.math_contract import MATH_CONTRACT_DATA
from web3._utils.contract_sources.contract_data.offchain_lookup import OFFCHAIN_LOOKUP_DATA
from web3._utils.contract_sources.contract_data.panic_errors_contract import (
    PANIC_ERRORS_CONTRACT_DATA,
)
from web3._utils.contract_sources.contract_data.revert_contract import REVERT_CONTRACT_DATA
from web3._utils.contract_sources.contract_data.storage_contract import STORAGE_CONTRACT_DATA
from web3.types import BlockData, TxReceipt

#: Each suite fixture's contract, by the name the fixtures use.
CONTRACTS: dict[str, dict[str, Any]] = {
    "math": MATH_CONTRACT_DATA,
    "emitter": EMITTER_CONTRACT_DATA,
    "revert": REVERT_CONTRACT_DATA,
    "offchain_lookup": OFFCHAIN_LOOKUP_DATA,
    "panic_errors": PANIC_ERRORS_CONTRACT_DATA,
    "storage": STORAGE_CONTRACT_DATA,
}


@dataclass(frozen=True)
class PreparedChain:
    """Addresses, hashes and blocks the suites' fixtures hand to the tests."""

    account: ChecksumAddress
    contract_addresses: dict[str, ChecksumAddress]
    math_deploy_txn_hash: HexBytes
    txn_hash_with_log: HexBytes
    block_with_txn_with_log: BlockData
    mined_txn_hash: HexBytes
    block_with_txn: BlockData
    empty_block: BlockData


def _wait(w3: Web3, transaction_hash: HexBytes) -> TxReceipt:
    receipt = w3.eth.wait_for_transaction_receipt(transaction_hash, timeout=30, poll_latency=0.05)
    if receipt["status"] != 1:
        raise AssertionError(f"setup transaction {transaction_hash.to_0x_hex()} failed: {receipt}")
    return receipt


def prepare_chain(w3: Web3, account: ChecksumAddress) -> PreparedChain:
    """Deploy the suites' contracts from ``account`` and make the blocks they inspect.

    Deployments are sent together, so they land in one or two blocks instead of six.
    """
    deploy_hashes = {
        name: w3.eth.contract(abi=data["abi"], bytecode=data["bytecode"])
        .constructor()
        .transact({"from": account})
        for name, data in CONTRACTS.items()
    }
    receipts = {name: _wait(w3, tx_hash) for name, tx_hash in deploy_hashes.items()}
    addresses = {name: receipt["contractAddress"] for name, receipt in receipts.items()}
    for name, address in addresses.items():
        if address is None or w3.eth.get_code(address) == b"":
            raise AssertionError(f"the {name} contract was not deployed: {receipts[name]}")

    emitter = w3.eth.contract(address=addresses["emitter"], abi=EMITTER_CONTRACT_DATA["abi"])
    txn_hash_with_log = emitter.functions.logDouble(
        which=EMITTER_ENUM["LogDoubleWithIndex"], arg0=12345, arg1=54321
    ).transact({"from": account})
    log_receipt = _wait(w3, txn_hash_with_log)

    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    empty_block = w3.eth.get_block("latest")
    if empty_block["transactions"]:
        raise AssertionError(f"evm_mine made a block with transactions: {empty_block}")

    # As in web3.py's geth fixture, this transfer pays a gas price: the suites check that
    # its receipt's effectiveGasPrice is positive and that the miner's balance moved.
    mined_txn_hash = w3.eth.send_transaction(
        {"from": account, "to": account, "value": 1, "gas": 21000, "gasPrice": 10**9}
    )
    mined_receipt = _wait(w3, mined_txn_hash)
    return PreparedChain(
        account=account,
        contract_addresses=addresses,
        math_deploy_txn_hash=deploy_hashes["math"],
        txn_hash_with_log=txn_hash_with_log,
        block_with_txn_with_log=w3.eth.get_block(log_receipt["blockHash"]),
        mined_txn_hash=mined_txn_hash,
        block_with_txn=w3.eth.get_block(mined_receipt["blockHash"]),
        empty_block=empty_block,
    )
