"""Building one block from a batch of candidate transactions.

The steps mirror py-evm's ``VM.import_block`` so that a follower re-executing the block
reaches the same state root: system-contract preprocessing, each transaction in order,
the block's tries, Prague's postprocessing, then finalisation. Unlike
``apply_all_transactions`` a candidate that turns out invalid on the state left by the
ones before it (a nonce gap, funds already spent) is left out instead of failing the
whole block, and one that no longer fits the gas left is deferred to the next block.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from eth._utils.address import generate_contract_address
from eth.abc import BlockAPI, BlockHeaderAPI, ChainAPI, ReceiptAPI, SignedTransactionAPI
from eth.constants import CREATE_CONTRACT_ADDRESS
from eth.vm.base import VM
from eth_typing import Address, Hash32
from eth_utils import ValidationError

from quorum_node.chain.records import LogEntry, TransactionRecord


@dataclass(frozen=True)
class BuiltBlock:
    block: BlockAPI
    records: tuple[TransactionRecord, ...]
    rejected: tuple[tuple[SignedTransactionAPI, str], ...]
    deferred: tuple[SignedTransactionAPI, ...]


def build_block(
    chain: ChainAPI,
    parent: BlockHeaderAPI,
    candidates: Sequence[SignedTransactionAPI],
    *,
    timestamp: int,
    coinbase: bytes,
    extra_data: bytes,
) -> BuiltBlock:
    """Execute ``candidates`` on ``parent``'s state; the caller persists the result."""
    header = chain.create_header_from_parent(
        parent, timestamp=timestamp, coinbase=coinbase, extra_data=extra_data
    )
    # block_preprocessing and block_postprocessing live on py-evm's VM, not on its API.
    vm = cast(VM, chain.get_vm(header))
    vm.block_preprocessing(vm.get_block())
    header = vm.get_header().copy(gas_used=0)

    included: list[SignedTransactionAPI] = []
    receipts: list[ReceiptAPI] = []
    rejected: list[tuple[SignedTransactionAPI, str]] = []
    deferred: list[SignedTransactionAPI] = []
    for transaction in candidates:
        if transaction.gas > header.gas_limit - header.gas_used:
            deferred.append(transaction)
            continue
        try:
            # Every check that can refuse a transaction runs before it changes state.
            receipt, _computation = vm.apply_transaction(header, transaction)
        except ValidationError as exc:
            rejected.append((transaction, str(exc)))
            continue
        header = vm.add_receipt_to_header(header, receipt)
        included.append(transaction)
        receipts.append(receipt)

    block = vm.set_block_transactions_and_withdrawals(vm.get_block(), header, included, receipts)
    block = vm.block_postprocessing(block)
    finalized = vm.finalize_block(vm.pack_block(block)).block
    return BuiltBlock(
        block=finalized,
        # The finalised block holds copies of the transactions, without the senders that
        # executing them cached; recovering each signature again cost ~5% of a block.
        records=make_records(finalized, receipts, [Address(tx.sender) for tx in included]),
        rejected=tuple(rejected),
        deferred=tuple(deferred),
    )


def effective_gas_price(transaction: SignedTransactionAPI, base_fee: int) -> int:
    """What the sender paid per unit of gas (EIP-1559's rule; legacy pays its price)."""
    if transaction.type_id is None or transaction.type_id == 1:
        return int(transaction.gas_price)
    return int(min(transaction.max_fee_per_gas, base_fee + transaction.max_priority_fee_per_gas))


def make_records(
    block: BlockAPI,
    receipts: Sequence[ReceiptAPI],
    senders: Sequence[Address] | None = None,
) -> tuple[TransactionRecord, ...]:
    """One record per transaction of a finalised block, in block order.

    ``senders``, when the caller already knows them (in block order), saves recovering
    each transaction's signature again.
    """
    records = []
    block_hash = Hash32(block.hash)
    base_fee = getattr(block.header, "base_fee_per_gas", 0) or 0
    previous_cumulative_gas = 0
    log_index = 0
    if senders is not None and len(senders) != len(block.transactions):
        raise ValueError(f"{len(senders)} senders for {len(block.transactions)} transactions")
    for index, (transaction, receipt) in enumerate(zip(block.transactions, receipts, strict=True)):
        sender = Address(transaction.sender) if senders is None else senders[index]
        to = Address(transaction.to) if transaction.to != CREATE_CONTRACT_ADDRESS else None
        contract_address = (
            Address(generate_contract_address(sender, transaction.nonce)) if to is None else None
        )
        logs = tuple(
            LogEntry(
                Address(log.address),
                tuple(topic.to_bytes(32, "big") for topic in log.topics),
                log.data,
            )
            for log in receipt.logs
        )
        records.append(
            TransactionRecord(
                transaction_hash=Hash32(transaction.hash),
                encoded_transaction=transaction.encode(),
                block_hash=block_hash,
                block_number=block.number,
                index=index,
                sender=sender,
                to=to,
                contract_address=contract_address,
                status=1 if receipt.state_root == b"\x01" else 0,
                gas_used=receipt.gas_used - previous_cumulative_gas,
                cumulative_gas_used=receipt.gas_used,
                effective_gas_price=effective_gas_price(transaction, base_fee),
                transaction_type=transaction.type_id or 0,
                first_log_index=log_index,
                logs=logs,
                logs_bloom=int(receipt.bloom).to_bytes(256, "big"),
            )
        )
        previous_cumulative_gas = receipt.gas_used
        log_index += len(logs)
    return tuple(records)
