"""Blocks, transactions, receipts and logs in the JSON shapes geth returns.

web3.py and ethers refuse objects that lack a standard field (see REFERENCE.md), so every
field geth sends is sent, with geth's names and hex encodings.
"""

from __future__ import annotations

import functools
from typing import Any, cast

from eth.abc import (
    BlockAPI,
    BlockHeaderAPI,
    LegacyTransactionFieldsAPI,
    SignedTransactionAPI,
)
from eth.constants import CREATE_CONTRACT_ADDRESS
from eth_utils import to_checksum_address

from quorum_node.chain.records import LogEntry, TransactionRecord

EMPTY_BLOOM = "0x" + "00" * 256


def hex_quantity(value: int) -> str:
    return hex(value)


def hex_data(value: bytes) -> str:
    return "0x" + bytes(value).hex()


@functools.lru_cache(maxsize=65_536)
def checksum(address: bytes) -> str:
    """EIP-55 form of ``address``. Kept for the addresses seen most (senders, contracts):
    each costs a keccak, and every receipt and log names several."""
    return str(to_checksum_address(address))


def format_header(header: BlockHeaderAPI, size: int | None = None) -> dict[str, Any]:
    formatted: dict[str, Any] = {
        "number": hex_quantity(header.block_number),
        "hash": hex_data(header.hash),
        "parentHash": hex_data(header.parent_hash),
        "nonce": hex_data(header.nonce),
        "mixHash": hex_data(header.mix_hash),
        "sha3Uncles": hex_data(header.uncles_hash),
        "logsBloom": hex_data(header.bloom.to_bytes(256, "big")),
        "transactionsRoot": hex_data(header.transaction_root),
        "stateRoot": hex_data(header.state_root),
        "receiptsRoot": hex_data(header.receipt_root),
        "miner": checksum(header.coinbase),
        "difficulty": hex_quantity(header.difficulty),
        "totalDifficulty": hex_quantity(header.difficulty),
        "extraData": hex_data(header.extra_data),
        "gasLimit": hex_quantity(header.gas_limit),
        "gasUsed": hex_quantity(header.gas_used),
        "timestamp": hex_quantity(header.timestamp),
        "baseFeePerGas": hex_quantity(getattr(header, "base_fee_per_gas", 0) or 0),
    }
    for attribute, key in (
        ("withdrawals_root", "withdrawalsRoot"),
        ("parent_beacon_block_root", "parentBeaconBlockRoot"),
        ("requests_hash", "requestsHash"),
    ):
        value = getattr(header, attribute, None)
        if value is not None:
            formatted[key] = hex_data(value)
    for attribute, key in (("blob_gas_used", "blobGasUsed"), ("excess_blob_gas", "excessBlobGas")):
        value = getattr(header, attribute, None)
        if value is not None:
            formatted[key] = hex_quantity(value)
    if size is not None:
        formatted["size"] = hex_quantity(size)
    return formatted


def format_block(
    block: BlockAPI,
    transactions: list[dict[str, Any]] | list[str],
) -> dict[str, Any]:
    formatted = format_header(block.header, size=len(_block_rlp(block)))
    formatted["transactions"] = transactions
    formatted["uncles"] = []
    formatted["withdrawals"] = []
    return formatted


def _block_rlp(block: BlockAPI) -> bytes:
    import rlp

    return bytes(rlp.encode(block))


def format_transaction(
    transaction: SignedTransactionAPI,
    sender: bytes,
    location: tuple[bytes, int, int] | None,
    base_fee: int = 0,
) -> dict[str, Any]:
    """A transaction as ``eth_getTransactionByHash`` returns it; ``location`` is
    (block hash, block number, index), or None while it waits in the pool."""
    type_id = transaction.type_id or 0
    to = None if transaction.to == CREATE_CONTRACT_ADDRESS else checksum(transaction.to)
    formatted: dict[str, Any] = {
        "blockHash": hex_data(location[0]) if location else None,
        "blockNumber": hex_quantity(location[1]) if location else None,
        "transactionIndex": hex_quantity(location[2]) if location else None,
        "hash": hex_data(transaction.hash),
        "from": checksum(sender),
        "to": to,
        "nonce": hex_quantity(transaction.nonce),
        "gas": hex_quantity(transaction.gas),
        "value": hex_quantity(transaction.value),
        "input": hex_data(transaction.data),
        "type": hex_quantity(type_id),
        "r": hex_quantity(transaction.r),
        "s": hex_quantity(transaction.s),
    }
    if type_id == 0:
        formatted["gasPrice"] = hex_quantity(transaction.gas_price)
        formatted["v"] = hex_quantity(cast(LegacyTransactionFieldsAPI, transaction).v)
        if transaction.chain_id is not None:
            formatted["chainId"] = hex_quantity(transaction.chain_id)
    else:
        chain_id = transaction.chain_id
        if chain_id is None:  # every typed transaction (EIP-2718) carries its chain id
            raise TypeError(f"type {type_id} transaction without a chain id")
        formatted["chainId"] = hex_quantity(chain_id)
        formatted["v"] = hex_quantity(transaction.y_parity)
        formatted["yParity"] = hex_quantity(transaction.y_parity)
        formatted["accessList"] = [
            {
                "address": checksum(address),
                "storageKeys": [hex_data(slot.to_bytes(32, "big")) for slot in slots],
            }
            for address, slots in transaction.access_list
        ]
        if type_id == 4:
            formatted["authorizationList"] = [
                {
                    "chainId": hex_quantity(authorization.chain_id),
                    "address": checksum(authorization.address),
                    "nonce": hex_quantity(authorization.nonce),
                    "yParity": hex_quantity(authorization.y_parity),
                    "r": hex_quantity(authorization.r),
                    "s": hex_quantity(authorization.s),
                }
                for authorization in transaction.authorization_list
            ]
        if type_id == 1:
            formatted["gasPrice"] = hex_quantity(transaction.gas_price)
        else:
            formatted["maxFeePerGas"] = hex_quantity(transaction.max_fee_per_gas)
            formatted["maxPriorityFeePerGas"] = hex_quantity(transaction.max_priority_fee_per_gas)
            formatted["gasPrice"] = hex_quantity(
                min(transaction.max_fee_per_gas, base_fee + transaction.max_priority_fee_per_gas)
                if location
                else transaction.max_fee_per_gas
            )
    return formatted


def format_log(record: TransactionRecord, position: int, log: LogEntry) -> dict[str, Any]:
    return {
        "address": checksum(log.address),
        "topics": [hex_data(topic) for topic in log.topics],
        "data": hex_data(log.data),
        "blockNumber": hex_quantity(record.block_number),
        "blockHash": hex_data(record.block_hash),
        "transactionHash": hex_data(record.transaction_hash),
        "transactionIndex": hex_quantity(record.index),
        "logIndex": hex_quantity(record.first_log_index + position),
        "removed": False,
    }


def format_receipt(record: TransactionRecord) -> dict[str, Any]:
    return {
        "transactionHash": hex_data(record.transaction_hash),
        "transactionIndex": hex_quantity(record.index),
        "blockHash": hex_data(record.block_hash),
        "blockNumber": hex_quantity(record.block_number),
        "from": checksum(record.sender),
        "to": checksum(record.to) if record.to else None,
        "contractAddress": checksum(record.contract_address) if record.contract_address else None,
        "cumulativeGasUsed": hex_quantity(record.cumulative_gas_used),
        "gasUsed": hex_quantity(record.gas_used),
        "effectiveGasPrice": hex_quantity(record.effective_gas_price),
        "logs": [format_log(record, position, log) for position, log in enumerate(record.logs)],
        "logsBloom": hex_data(record.logs_bloom),
        "status": hex_quantity(record.status),
        "type": hex_quantity(record.transaction_type),
    }
