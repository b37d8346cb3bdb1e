"""What the node remembers about each included transaction, in one record per hash.

py-evm can find a receipt from a hash, but answering ``eth_getTransactionReceipt`` from
its tries alone costs several trie walks, a signature recovery (for ``from``) and a pass
over the earlier receipts of the block (for ``gasUsed`` and ``logIndex``). Clients poll
receipts for every transaction they send, so the node writes this record once, in the
same atomic write as the block, and answers each poll with one database read.
"""

from __future__ import annotations

from dataclasses import dataclass

import rlp
from eth_typing import Address, Hash32

RECORD_VERSION = 1
_KEY_PREFIX = b"quorum-py:tx:"


def record_key(transaction_hash: bytes) -> bytes:
    return _KEY_PREFIX + transaction_hash


@dataclass(frozen=True)
class LogEntry:
    """One event as the EVM emitted it."""

    address: Address
    topics: tuple[bytes, ...]
    data: bytes


@dataclass(frozen=True)
class TransactionRecord:
    """A transaction with its place in the chain and its public outcome."""

    transaction_hash: Hash32
    encoded_transaction: bytes  # the canonical (typed or legacy RLP) encoding
    block_hash: Hash32
    block_number: int
    index: int
    sender: Address
    to: Address | None
    contract_address: Address | None
    status: int
    gas_used: int
    cumulative_gas_used: int
    effective_gas_price: int
    transaction_type: int
    first_log_index: int
    logs: tuple[LogEntry, ...]
    logs_bloom: bytes

    def to_bytes(self) -> bytes:
        return bytes(
            rlp.encode(
                [
                    RECORD_VERSION,
                    self.transaction_hash,
                    self.encoded_transaction,
                    self.block_hash,
                    self.block_number,
                    self.index,
                    self.sender,
                    self.to or b"",
                    self.contract_address or b"",
                    self.status,
                    self.gas_used,
                    self.cumulative_gas_used,
                    self.effective_gas_price,
                    self.transaction_type,
                    self.first_log_index,
                    [[log.address, list(log.topics), log.data] for log in self.logs],
                    self.logs_bloom,
                ]
            )
        )

    @classmethod
    def from_bytes(cls, encoded: bytes) -> TransactionRecord:
        fields = rlp.decode(encoded)
        version = int.from_bytes(fields[0], "big")
        if version != RECORD_VERSION:
            raise ValueError(f"unknown transaction record version {version}")
        (
            _,
            transaction_hash,
            encoded_transaction,
            block_hash,
            block_number,
            index,
            sender,
            to,
            contract_address,
            status,
            gas_used,
            cumulative_gas_used,
            effective_gas_price,
            transaction_type,
            first_log_index,
            logs,
            logs_bloom,
        ) = fields

        def as_int(raw: bytes) -> int:
            return int.from_bytes(raw, "big")

        return cls(
            transaction_hash=Hash32(transaction_hash),
            encoded_transaction=encoded_transaction,
            block_hash=Hash32(block_hash),
            block_number=as_int(block_number),
            index=as_int(index),
            sender=Address(sender),
            to=Address(to) if to else None,
            contract_address=Address(contract_address) if contract_address else None,
            status=as_int(status),
            gas_used=as_int(gas_used),
            cumulative_gas_used=as_int(cumulative_gas_used),
            effective_gas_price=as_int(effective_gas_price),
            transaction_type=as_int(transaction_type),
            first_log_index=as_int(first_log_index),
            logs=tuple(
                LogEntry(Address(address), tuple(topics), data) for address, topics, data in logs
            ),
            logs_bloom=logs_bloom,
        )
