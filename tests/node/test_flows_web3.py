"""What a web3.py 8 user does, against a real ``quorum-node dev`` process.

Two nodes serve this module: ``dev_node`` makes a block whenever transactions wait
(50 ms block period), and ``manual_node`` makes blocks only on ``evm_mine``, so that
what waits in the pool (pending and queued nonces, replacements, the pending filter)
can be observed before it is mined.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes
from web3 import AsyncWeb3, Web3
from web3.contract import Contract
from web3.exceptions import (
    ContractCustomError,
    ContractLogicError,
    ContractPanicError,
    TransactionNotFound,
    Web3RPCError,
)
from web3.providers.persistent import WebSocketProvider
from web3.types import TxReceipt

from quorum_node import contracts
from tests.support.node_process import TEST_KEYS, NodeProcess, wait_until

pytestmark = pytest.mark.integration

GWEI = 10**9
COINBASE = "0x0000000000000000000000000000000000000000"
RECIPIENT = to_checksum_address("0x" + "42" * 20)


def artifact(name: str) -> dict[str, Any]:
    return contracts.artifact(name)


def signer(index: int) -> LocalAccount:
    return Account.from_key(TEST_KEYS[index])


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def w3(dev_node: NodeProcess) -> Web3:
    return Web3(Web3.HTTPProvider(dev_node.http_url))


@pytest.fixture(scope="module")
def manual_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """A node whose minter never fires within a test run: blocks come from evm_mine."""
    node = NodeProcess(
        tmp_path_factory.mktemp("manual") / "data", extra_args=["--block-period", "3600000"]
    )
    try:
        node.start()
        # The first automatic block may come at once; after an evm_mine the next
        # automatic one is an hour away.
        Web3(Web3.HTTPProvider(node.http_url)).provider.make_request("evm_mine", [])
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="module")
def mw3(manual_node: NodeProcess) -> Web3:
    return Web3(Web3.HTTPProvider(manual_node.http_url))


@pytest.fixture(scope="module")
def account(w3: Web3) -> str:
    return w3.eth.accounts[0]  # type: ignore[no-any-return]


def deploy(w3: Web3, account: str, name: str, *args: Any) -> tuple[Contract, TxReceipt]:
    spec = artifact(name)
    factory = w3.eth.contract(abi=spec["abi"], bytecode=spec["bytecode"])
    receipt = w3.eth.wait_for_transaction_receipt(
        factory.constructor(*args).transact({"from": account}), timeout=20
    )
    assert receipt.status == 1
    return w3.eth.contract(address=receipt.contractAddress, abi=spec["abi"]), receipt


@pytest.fixture(scope="module")
def storage(w3: Web3, account: str) -> tuple[Contract, TxReceipt]:
    return deploy(w3, account, "SimpleStorage", 42)


@pytest.fixture(scope="module")
def token(w3: Web3, account: str) -> Contract:
    return deploy(w3, account, "Token", "Test", "TST", 1000 * 10**18)[0]


@pytest.fixture(scope="module")
def opcodes(w3: Web3, account: str) -> Contract:
    return deploy(w3, account, "Opcodes")[0]


def send_signed(w3: Web3, local: LocalAccount, fields: dict[str, Any]) -> HexBytes:
    signed = local.sign_transaction(fields)
    return w3.eth.send_raw_transaction(signed.raw_transaction)


def _transfer(w3: Web3, nonce: int, gas_price: int = 0, value: int = 1) -> dict[str, Any]:
    return {
        "to": RECIPIENT,
        "value": value,
        "gas": 21_000,
        "gasPrice": gas_price,
        "nonce": nonce,
        "chainId": w3.eth.chain_id,
    }


def pool_status(w3: Web3) -> dict[str, str]:
    return w3.provider.make_request("txpool_status", [])["result"]  # type: ignore[no-any-return]


# --- contracts, calls, events ------------------------------------------------------


def test_deploy_call_transact_and_events_from_receipts(
    w3: Web3, account: str, storage: tuple[Contract, TxReceipt]
) -> None:
    contract, deploy_receipt = storage
    deployed = HexBytes(artifact("SimpleStorage")["deployedBytecode"])
    assert w3.eth.get_code(contract.address) == deployed
    (created,) = contract.events.Stored().process_receipt(deploy_receipt)
    assert created.args.value == 42 and created.args.by == account

    receipt = w3.eth.wait_for_transaction_receipt(
        contract.functions.set(7).transact({"from": account}), timeout=20
    )
    assert receipt.status == 1 and receipt.to == contract.address
    (event,) = contract.events.Stored().process_receipt(receipt)
    assert event.args == {"by": account, "value": 7}
    assert event.blockHash == receipt.blockHash and event.transactionHash == receipt.transactionHash
    assert contract.functions.get().call() == 7
    assert contract.functions.storedData().call() == 7
    # a call at an older block sees the older state
    assert contract.functions.get().call(block_identifier=deploy_receipt.blockNumber) == 42


def test_token_transfer_events_and_balances(w3: Web3, account: str, token: Contract) -> None:
    other = signer(1).address
    receipt = w3.eth.wait_for_transaction_receipt(
        token.functions.transfer(other, 5 * 10**18).transact({"from": account}), timeout=20
    )
    (transfer,) = token.events.Transfer().process_receipt(receipt)
    assert transfer.args == {"from": account, "to": other, "value": 5 * 10**18}
    assert token.functions.balanceOf(other).call() == 5 * 10**18
    assert token.functions.name().call() == "Test" and token.functions.decimals().call() == 18


def test_get_logs_by_address_and_topics(
    w3: Web3, account: str, storage: tuple[Contract, TxReceipt]
) -> None:
    contract, deploy_receipt = storage
    receipt = w3.eth.wait_for_transaction_receipt(
        contract.functions.set(11).transact({"from": account}), timeout=20
    )
    stored_topic = keccak(text="Stored(address,uint256)")
    by_topic = "0x" + "00" * 12 + account[2:].lower()
    logs = w3.eth.get_logs(
        {
            "address": contract.address,
            "fromBlock": deploy_receipt.blockNumber,
            "toBlock": "latest",
            "topics": [stored_topic, by_topic],
        }
    )
    assert logs[0].transactionHash == deploy_receipt.transactionHash
    assert logs[-1].transactionHash == receipt.transactionHash
    assert all(log.address == contract.address for log in logs)
    # by block hash
    (only,) = w3.eth.get_logs({"blockHash": receipt.blockHash, "address": contract.address})
    assert only == receipt.logs[0]
    # no match for another "by"
    assert (
        w3.eth.get_logs(
            {"fromBlock": 0, "address": contract.address, "topics": [None, "0x" + "11" * 32]}
        )
        == []
    )
    decoded = contract.events.Stored.get_logs(from_block=receipt.blockNumber)
    assert [log.args.value for log in decoded] == [11]


def test_get_logs_with_from_block_after_to_block_is_an_error(w3: Web3) -> None:
    with pytest.raises(Web3RPCError, match="invalid block range"):
        w3.eth.get_logs({"fromBlock": 2, "toBlock": 1})


def test_log_filter_changes_and_filter_logs(
    w3: Web3, account: str, storage: tuple[Contract, TxReceipt]
) -> None:
    contract, deploy_receipt = storage
    log_filter = w3.eth.filter(
        {"address": contract.address, "fromBlock": deploy_receipt.blockNumber}
    )
    assert w3.eth.get_filter_changes(log_filter.filter_id) == []
    receipt = w3.eth.wait_for_transaction_receipt(
        contract.functions.set(123).transact({"from": account}), timeout=20
    )
    changes = w3.eth.get_filter_changes(log_filter.filter_id)
    assert [log.transactionHash for log in changes] == [receipt.transactionHash]
    assert int.from_bytes(changes[0].data, "big") == 123
    assert w3.eth.get_filter_changes(log_filter.filter_id) == []
    every = w3.eth.get_filter_logs(log_filter.filter_id)
    assert every[0].transactionHash == deploy_receipt.transactionHash
    assert every[-1].transactionHash == receipt.transactionHash
    assert w3.eth.uninstall_filter(log_filter.filter_id)
    with pytest.raises(Web3RPCError, match="filter not found"):
        w3.eth.get_filter_changes(log_filter.filter_id)


def test_block_filter(w3: Web3, account: str) -> None:
    block_filter = w3.eth.filter("latest")
    receipt = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_transaction({"from": account, "to": RECIPIENT, "value": 1}), timeout=20
    )
    changes = w3.eth.get_filter_changes(block_filter.filter_id)
    assert receipt.blockHash in changes
    assert w3.eth.uninstall_filter(block_filter.filter_id)


def test_pending_transaction_filter(mw3: Web3) -> None:
    pending_filter = mw3.eth.filter("pending")
    local = signer(2)
    nonce = mw3.eth.get_transaction_count(local.address, "pending")
    tx_hash = send_signed(mw3, local, _transfer(mw3, nonce))
    assert mw3.eth.get_filter_changes(pending_filter.filter_id) == [tx_hash]
    pending_tx = mw3.eth.get_transaction(tx_hash)
    assert pending_tx.blockNumber is None and pending_tx["from"] == local.address
    mw3.provider.make_request("evm_mine", [])
    assert mw3.eth.get_transaction_receipt(tx_hash).status == 1
    assert mw3.eth.get_filter_changes(pending_filter.filter_id) == []


# --- WebSocket subscriptions --------------------------------------------------------


async def test_websocket_new_heads_and_logs_subscriptions(
    dev_node: NodeProcess, storage: tuple[Contract, TxReceipt]
) -> None:
    contract, _ = storage
    async with AsyncWeb3(WebSocketProvider(dev_node.ws_url)) as aw3:
        account = (await aw3.eth.accounts)[0]
        heads_id = await aw3.eth.subscribe("newHeads")
        logs_id = await aw3.eth.subscribe("logs", {"address": contract.address})
        async_contract = aw3.eth.contract(address=contract.address, abi=contract.abi)
        tx_hash = await async_contract.functions.set(99).transact({"from": account})
        receipt = await aw3.eth.wait_for_transaction_receipt(tx_hash, timeout=20)

        heads: list[Any] = []
        logs: list[Any] = []
        async with asyncio.timeout(20):
            async for message in aw3.socket.process_subscriptions():
                if message["subscription"] == heads_id:
                    heads.append(message["result"])
                elif message["subscription"] == logs_id:
                    logs.append(message["result"])
                if logs and any(head["hash"] == receipt.blockHash for head in heads):
                    break
        head = next(head for head in heads if head["hash"] == receipt.blockHash)
        assert head["number"] == receipt.blockNumber
        assert head["parentHash"] == (await aw3.eth.get_block(receipt.blockNumber - 1))["hash"]
        (log,) = logs
        assert log["transactionHash"] == tx_hash and log["address"] == contract.address
        assert int.from_bytes(log["data"], "big") == 99
        assert await aw3.eth.unsubscribe(heads_id)
        assert await aw3.eth.unsubscribe(logs_id)


# --- reverts -----------------------------------------------------------------------


def test_revert_reason_string(w3: Web3, account: str, token: Contract) -> None:
    poor = signer(3).address
    with pytest.raises(ContractLogicError, match="Token: insufficient balance") as excinfo:
        token.functions.transfer(account, 1).call({"from": poor})
    assert not isinstance(excinfo.value, ContractCustomError | ContractPanicError)
    # transact estimates gas first, which reverts the same way
    with pytest.raises(ContractLogicError, match="Token: insufficient balance"):
        token.functions.transfer(poor, 10**40).transact({"from": account})
    # mined anyway (explicit gas): status 0, and no Transfer event
    receipt = w3.eth.wait_for_transaction_receipt(
        token.functions.transfer(poor, 10**40).transact({"from": account, "gas": 100_000}),
        timeout=20,
    )
    assert receipt.status == 0 and receipt.logs == []


def test_custom_error_and_panic(w3: Web3, account: str, opcodes: Contract) -> None:
    with pytest.raises(ContractCustomError) as custom:
        opcodes.functions.failWithCustomError().call({"from": account})
    selector = keccak(text="Unauthorized(address,uint256)")[:4]
    assert HexBytes(custom.value.data)[:4] == selector
    with pytest.raises(ContractPanicError, match="Assert evaluates to false"):
        opcodes.functions.failWithPanic().call()
    with pytest.raises(ContractLogicError, match="Opcodes: reason string"):
        opcodes.functions.failWithReason().call()


# --- fees and gas ------------------------------------------------------------------


def test_eip1559_default_fees_for_node_held_account(w3: Web3, account: str) -> None:
    tx_hash = w3.eth.send_transaction({"from": account, "to": RECIPIENT, "value": 10})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=20)
    transaction = w3.eth.get_transaction(tx_hash)
    assert transaction.type == 2 and receipt.type == 2
    assert receipt.effectiveGasPrice == 0
    assert receipt.gasUsed == 21_000
    block = w3.eth.get_block(receipt.blockNumber)
    assert block.baseFeePerGas == 0
    assert w3.eth.gas_price == 0 and w3.eth.max_priority_fee == 0
    history = w3.eth.fee_history(3, "latest", [50.0])
    assert history["baseFeePerGas"][-1] == 0


def test_gas_price_zero_is_accepted(w3: Web3) -> None:
    local = signer(4)
    nonce = w3.eth.get_transaction_count(local.address, "pending")
    before = w3.eth.get_balance(local.address)
    tx_hash = send_signed(w3, local, _transfer(w3, nonce, value=5))
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=20)
    assert receipt.status == 1 and receipt.effectiveGasPrice == 0
    assert w3.eth.get_balance(local.address, receipt.blockNumber) == before - 5


@pytest.mark.parametrize("kind", ["legacy", "dynamic"])
def test_paying_gas_charges_sender_and_pays_coinbase(w3: Web3, kind: str) -> None:
    local = signer(5)
    nonce = w3.eth.get_transaction_count(local.address, "pending")
    fields: dict[str, Any] = {
        "to": RECIPIENT,
        "value": 3,
        "gas": 30_000,
        "nonce": nonce,
        "chainId": w3.eth.chain_id,
    }
    if kind == "legacy":
        fields["gasPrice"] = GWEI
    else:
        fields.update(maxFeePerGas=3 * GWEI, maxPriorityFeePerGas=GWEI)
    receipt = w3.eth.wait_for_transaction_receipt(send_signed(w3, local, fields), timeout=20)
    assert receipt.status == 1
    assert receipt.effectiveGasPrice == GWEI  # base fee 0: the tip is the whole price
    block = receipt.blockNumber
    paid = receipt.gasUsed * GWEI
    assert receipt.gasUsed == 21_000
    balance = w3.eth.get_balance
    sender_delta = balance(local.address, block - 1) - balance(local.address, block)
    assert sender_delta == paid + 3
    fees_in_block = sum(r.gasUsed * r.effectiveGasPrice for r in w3.eth.get_block_receipts(block))
    coinbase_delta = w3.eth.get_balance(COINBASE, block) - w3.eth.get_balance(COINBASE, block - 1)
    assert coinbase_delta == fees_in_block >= paid


# --- locally signed transactions -----------------------------------------------------


def test_locally_signed_transaction_types(w3: Web3, storage: tuple[Contract, TxReceipt]) -> None:
    contract, _ = storage
    local = signer(6)
    chain_id = w3.eth.chain_id
    nonce = w3.eth.get_transaction_count(local.address, "pending")
    set_data = contract.functions.set(1)._encode_transaction_data()
    variants: list[tuple[dict[str, Any], int]] = [
        ({"gasPrice": 0, "chainId": chain_id}, 0),
        ({"gasPrice": 0}, 0),  # pre-EIP-155: no chain id in the signature
        (
            {
                "gasPrice": 0,
                "chainId": chain_id,
                "type": 1,
                "accessList": [{"address": contract.address, "storageKeys": ["0x" + "00" * 32]}],
            },
            1,
        ),
        ({"maxFeePerGas": 0, "maxPriorityFeePerGas": 0, "chainId": chain_id, "type": 2}, 2),
    ]
    hashes = []
    for offset, (fee_fields, _type) in enumerate(variants):
        fields = {
            "to": contract.address,
            "data": set_data,
            "gas": 100_000,
            "nonce": nonce + offset,
            "value": 0,
            **fee_fields,
        }
        signed = local.sign_transaction(fields)
        hashes.append(w3.eth.send_raw_transaction(signed.raw_transaction))
        assert hashes[-1] == signed.hash
    for tx_hash, (fee_fields, expected_type) in zip(hashes, variants, strict=True):
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=20)
        assert receipt.status == 1 and receipt["from"] == local.address
        assert receipt.type == expected_type
        transaction = w3.eth.get_transaction(tx_hash)
        assert transaction.type == expected_type and transaction["from"] == local.address
        if "chainId" not in fee_fields:
            assert transaction.v in (27, 28) and transaction.get("chainId") is None
    assert w3.eth.get_transaction_count(local.address) == nonce + len(variants)


# --- Cancun opcodes ----------------------------------------------------------------


def test_cancun_transient_storage_and_mcopy(w3: Web3, account: str, opcodes: Contract) -> None:
    assert opcodes.functions.transientRoundTrip(41).call() == 42
    assert opcodes.functions.transientVariable(7).call() == 7
    receipt = w3.eth.wait_for_transaction_receipt(
        opcodes.functions.transientVariable(9).transact({"from": account}), timeout=20
    )
    assert receipt.status == 1
    assert opcodes.functions.readTransientVariable().call() == 0
    payload = bytes(range(200))
    assert opcodes.functions.copyBytes(payload).call() == payload
    assert opcodes.functions.concat(b"quorum", b"-py").call() == b"quorum-py"


# --- the pool: pending nonces, queueing, replacement ------------------------------------


def test_pending_nonce_txpool_status_and_content(mw3: Web3) -> None:
    local = signer(0)
    nonce = mw3.eth.get_transaction_count(local.address)
    assert mw3.eth.get_transaction_count(local.address, "pending") == nonce
    first = send_signed(mw3, local, _transfer(mw3, nonce))
    second = send_signed(mw3, local, _transfer(mw3, nonce + 1))
    queued = send_signed(mw3, local, _transfer(mw3, nonce + 3))
    assert mw3.eth.get_transaction_count(local.address, "latest") == nonce
    assert mw3.eth.get_transaction_count(local.address, "pending") == nonce + 2

    assert pool_status(mw3) == {"pending": "0x2", "queued": "0x1"}
    content = mw3.provider.make_request("txpool_content", [])["result"]
    assert set(content["pending"][local.address]) == {str(nonce), str(nonce + 1)}
    assert content["pending"][local.address][str(nonce)]["hash"] == first.to_0x_hex()
    assert content["queued"][local.address][str(nonce + 3)]["hash"] == queued.to_0x_hex()

    pending_block = mw3.eth.get_block("pending")
    assert pending_block.number == mw3.eth.block_number + 1

    mw3.provider.make_request("evm_mine", [])
    assert mw3.eth.get_transaction_receipt(first).status == 1
    assert mw3.eth.get_transaction_receipt(second).blockNumber == mw3.eth.block_number
    with pytest.raises(TransactionNotFound):
        mw3.eth.get_transaction_receipt(queued)
    assert pool_status(mw3) == {"pending": "0x0", "queued": "0x1"}
    assert mw3.eth.get_transaction_count(local.address, "pending") == nonce + 2

    gap = send_signed(mw3, local, _transfer(mw3, nonce + 2))
    assert mw3.eth.get_transaction_count(local.address, "pending") == nonce + 4
    mw3.provider.make_request("evm_mine", [])
    assert mw3.eth.get_transaction_receipt(gap).status == 1
    assert mw3.eth.get_transaction_receipt(queued).status == 1
    assert pool_status(mw3) == {"pending": "0x0", "queued": "0x0"}


def test_nonce_replacement(mw3: Web3) -> None:
    local = signer(1)
    nonce = mw3.eth.get_transaction_count(local.address, "pending")
    original = send_signed(mw3, local, _transfer(mw3, nonce, gas_price=GWEI, value=1))
    with pytest.raises(Web3RPCError, match="replacement transaction underpriced"):
        send_signed(mw3, local, _transfer(mw3, nonce, gas_price=GWEI, value=2))
    with pytest.raises(Web3RPCError, match="already known"):
        send_signed(mw3, local, _transfer(mw3, nonce, gas_price=GWEI, value=1))
    replacement = send_signed(mw3, local, _transfer(mw3, nonce, gas_price=2 * GWEI, value=3))
    assert pool_status(mw3)["pending"] == "0x1"
    mw3.provider.make_request("evm_mine", [])
    receipt = mw3.eth.get_transaction_receipt(replacement)
    assert receipt.status == 1 and receipt.effectiveGasPrice == 2 * GWEI
    with pytest.raises(TransactionNotFound):
        mw3.eth.get_transaction_receipt(original)
    with pytest.raises(TransactionNotFound):
        mw3.eth.get_transaction(original)
    with pytest.raises(Web3RPCError, match="nonce too low"):
        send_signed(mw3, local, _transfer(mw3, nonce, gas_price=10 * GWEI))


def test_future_nonces_wait_for_the_gap_then_execute(w3: Web3) -> None:
    local = signer(7)
    nonce = w3.eth.get_transaction_count(local.address, "pending")
    later = [send_signed(w3, local, _transfer(w3, nonce + offset)) for offset in (2, 1)]
    content = w3.provider.make_request("txpool_content", [])["result"]
    assert set(content["queued"][local.address]) == {str(nonce + 1), str(nonce + 2)}
    for tx_hash in later:
        with pytest.raises(TransactionNotFound):
            w3.eth.get_transaction_receipt(tx_hash)
    first = send_signed(w3, local, _transfer(w3, nonce))
    receipts = [w3.eth.wait_for_transaction_receipt(h, timeout=20) for h in [first, *later[::-1]]]
    assert all(r.status == 1 for r in receipts)
    positions = [(r.blockNumber, r.transactionIndex) for r in receipts]
    assert positions == sorted(positions)
    assert w3.eth.get_transaction_count(local.address) == nonce + 3


# --- node-held accounts: signing ------------------------------------------------------


def test_sign_transaction_returns_raw_and_tx(w3: Web3, account: str) -> None:
    nonce = w3.eth.get_transaction_count(account, "pending")
    signed = w3.eth.sign_transaction(
        {"from": account, "to": RECIPIENT, "value": 17, "gas": 21_000, "nonce": nonce}
    )
    assert Account.recover_transaction(signed.raw) == account
    assert signed.tx["to"] == RECIPIENT and signed.tx["value"] == 17
    assert signed.tx["nonce"] == nonce and signed.tx["hash"] == keccak(signed.raw)
    # signing alone sends nothing
    assert w3.eth.get_transaction_count(account, "pending") == nonce
    tx_hash = w3.eth.send_raw_transaction(signed.raw)
    assert tx_hash == signed.tx["hash"]
    assert w3.eth.wait_for_transaction_receipt(tx_hash, timeout=20).status == 1
    assert w3.eth.get_raw_transaction(tx_hash) == signed.raw


def test_get_raw_transaction_by_hash_for_local_signature(w3: Web3) -> None:
    local = signer(4)
    nonce = w3.eth.get_transaction_count(local.address, "pending")
    signed = local.sign_transaction(_transfer(w3, nonce))
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    w3.eth.wait_for_transaction_receipt(tx_hash, timeout=20)
    assert w3.eth.get_raw_transaction(tx_hash) == signed.raw_transaction
    with pytest.raises(TransactionNotFound):
        w3.eth.get_raw_transaction("0x" + "ab" * 32)


def test_eth_sign_recovers_to_the_account(w3: Web3, account: str) -> None:
    message = b"quorum-py says hello"
    signature = w3.eth.sign(account, data=message)
    signable = encode_defunct(primitive=message)
    assert Account.recover_message(signable, signature=signature) == account


def test_sign_typed_data_v4_recovers_to_the_account(w3: Web3, account: str) -> None:
    typed = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Mail": [
                {"name": "from", "type": "address"},
                {"name": "to", "type": "address"},
                {"name": "contents", "type": "string"},
            ],
        },
        "primaryType": "Mail",
        "domain": {
            "name": "quorum-py",
            "version": "1",
            "chainId": w3.eth.chain_id,
            "verifyingContract": RECIPIENT,
        },
        "message": {"from": account, "to": RECIPIENT, "contents": "Hello, Bob!"},
    }
    signable = encode_typed_data(full_message=typed)
    response = w3.provider.make_request("eth_signTypedData_v4", [account, typed])
    assert Account.recover_message(signable, signature=response["result"]) == account
    # web3.py's own method sends "eth_signTypedData"
    signature = w3.eth.sign_typed_data(account, typed)
    assert signature == HexBytes(response["result"])
    # MetaMask-style callers send the typed data as a JSON string
    as_text = w3.provider.make_request("eth_signTypedData_v4", [account, json.dumps(typed)])
    assert as_text["result"] == response["result"]


# --- calls with state overrides, block receipts, evm_mine, batches --------------------


def test_eth_call_with_state_overrides(w3: Web3, storage: tuple[Contract, TxReceipt]) -> None:
    contract, _ = storage
    current = contract.functions.get().call()
    get_call = {"to": contract.address, "data": contract.functions.get()._encode_transaction_data()}

    diff = {contract.address: {"stateDiff": {"0x" + "00" * 32: "0x" + f"{777:064x}"}}}
    assert int.from_bytes(w3.eth.call(get_call, "latest", diff), "big") == 777
    state = {contract.address: {"state": {"0x" + "00" * 31 + "01": "0x" + f"{5:064x}"}}}
    assert int.from_bytes(w3.eth.call(get_call, "latest", state), "big") == 0
    assert contract.functions.get().call() == current  # overrides never persist

    # code override: PUSH20 <who> BALANCE PUSH1 0 MSTORE PUSH1 32 PUSH1 0 RETURN
    who = "0x" + "77" * 20
    probe = to_checksum_address("0x" + "99" * 20)
    code = "0x73" + "77" * 20 + "31" + "600052" + "60206000f3"
    overrides = {probe: {"code": code}, to_checksum_address(who): {"balance": 123_456}}
    assert int.from_bytes(w3.eth.call({"to": probe}, "latest", overrides), "big") == 123_456
    assert w3.eth.get_code(probe) == b""
    assert w3.eth.get_balance(to_checksum_address(who)) == 0


def test_get_block_receipts(w3: Web3, account: str) -> None:
    tx_hash = w3.eth.send_transaction({"from": account, "to": RECIPIENT, "value": 1})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=20)
    block_receipts = w3.eth.get_block_receipts(receipt.blockNumber)
    block = w3.eth.get_block(receipt.blockNumber)
    assert [r.transactionHash for r in block_receipts] == list(block.transactions)
    assert receipt in block_receipts
    assert w3.eth.get_block_receipts(block.hash) == block_receipts


def test_evm_mine_on_an_empty_pool_seals_an_empty_block(w3: Web3) -> None:
    before = w3.eth.block_number
    w3.provider.make_request("evm_mine", [])
    wait_until(lambda: w3.eth.block_number > before, 10, "evm_mine's block")
    block = w3.eth.get_block(before + 1)
    assert block.transactions == [] and block.gasUsed == 0
    assert block.parentHash == w3.eth.get_block(before).hash


def test_pending_block_number_is_latest_plus_one(w3: Web3) -> None:
    pending = w3.eth.get_block("pending")
    latest = w3.eth.get_block("latest")
    assert pending.number == latest.number + 1
    assert pending.parentHash == latest.hash


def test_batch_request_through_the_provider(w3: Web3, account: str) -> None:
    responses = w3.provider.make_batch_request(
        [
            ("eth_blockNumber", []),
            ("eth_chainId", []),
            ("eth_getBalance", [account, "latest"]),
            ("no_suchMethod", []),
        ]
    )
    assert isinstance(responses, list) and len(responses) == 4
    by_id = sorted(responses, key=lambda response: response["id"])
    assert int(by_id[1]["result"], 16) == w3.eth.chain_id
    assert int(by_id[2]["result"], 16) > 0
    assert by_id[3]["error"]["code"] == -32601
    with w3.batch_requests() as batch:
        batch.add(w3.eth.get_block("latest"))
        batch.add(w3.eth.get_balance(account))
        block, balance = batch.execute()
    assert block.number >= 0 and balance > 0
