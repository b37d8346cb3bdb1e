"""What a node keeps of private state, in the chain database beside the public chain.

All of it is written in the same atomic write as the public block it belongs to, so a
crash never leaves a block without its private roots or receipts:

* per public block, the private state root of every party group this node belongs to;
* per private transaction this node is party to, its private ``TransactionRecord``;
* per private contract, the group it lives in, its creation transaction, privacy flag
  and mandatory recipients;
* per public block with private logs, a bloom filter of them (for eth_getLogs);
* per public block with private transactions this node executed, which transactions
  (and payload hashes) each group executed in it, in block order (for disclosure);
* per party group, its members and the contracts created in it (for
  ``quorum_groupContracts``; contracts created before this index existed are not listed).
"""

from __future__ import annotations

from dataclasses import dataclass

import rlp
from eth.abc import DatabaseAPI
from eth_typing import Address, Hash32

from quorum_node.chain.records import TransactionRecord

_ROOTS = b"quorum-py:private-roots:"
_RECORD = b"quorum-py:private-record:"
_CONTRACT = b"quorum-py:private-contract:"
_BLOOM = b"quorum-py:private-bloom:"
_GROUP = b"quorum-py:private-group:"
_GROUP_CONTRACTS = b"quorum-py:group-contracts:"
_BLOCK_GROUPS = b"quorum-py:block-groups:"


_CONTRACT_VERSION = 2


@dataclass(frozen=True)
class PrivateContract:
    """A private contract's privacy metadata (GoQuorum's ``PrivacyMetadata``), fixed by the
    transaction that created it: later transactions to it must carry ``privacy_flag``
    and, for flag 2, list every key of ``mandatory_for`` (``privacy.flags``)."""

    group_id: bytes
    creation_transaction: Hash32
    privacy_flag: int
    mandatory_for: tuple[str, ...] = ()  # base64 manager keys, sorted

    def to_bytes(self) -> bytes:
        """Version 2: ``[2, group, creation, flag, [mandatory keys]]``; version 1 (no
        mandatory recipients) is still read."""
        return bytes(
            rlp.encode(
                [
                    _CONTRACT_VERSION,
                    self.group_id,
                    self.creation_transaction,
                    self.privacy_flag,
                    [key.encode() for key in sorted(self.mandatory_for)],
                ]
            )
        )

    @classmethod
    def from_bytes(cls, encoded: bytes) -> PrivateContract:
        fields = rlp.decode(encoded)
        version = int.from_bytes(fields[0], "big")
        if version == 1 and len(fields) == 4:
            _version, group_id, creation, flag = fields
            mandatory: list[bytes] = []
        elif version == _CONTRACT_VERSION and len(fields) == 5:
            _version, group_id, creation, flag, mandatory = fields
        else:
            raise ValueError(f"private contract record version {version} is not readable")
        return cls(
            group_id,
            Hash32(creation),
            int.from_bytes(flag, "big"),
            tuple(key.decode() for key in mandatory),
        )


class PrivateStore:
    def __init__(self, db: DatabaseAPI) -> None:
        self._db = db

    def _get(self, key: bytes) -> bytes | None:
        try:
            return bytes(self._db[key])
        except KeyError:
            return None

    # per block
    def roots_after(self, block_hash: bytes) -> dict[bytes, Hash32]:
        encoded = self._get(_ROOTS + block_hash)
        if encoded is None:
            return {}
        return {group: Hash32(root) for group, root in rlp.decode(encoded)}

    def set_roots_after(self, block_hash: bytes, roots: dict[bytes, Hash32]) -> None:
        if roots:
            self._db[_ROOTS + block_hash] = bytes(rlp.encode(sorted(roots.items())))

    def private_bloom(self, block_hash: bytes) -> int:
        encoded = self._get(_BLOOM + block_hash)
        return int.from_bytes(encoded, "big") if encoded else 0

    def set_private_bloom(self, block_hash: bytes, bloom: int) -> None:
        if bloom:
            self._db[_BLOOM + block_hash] = bloom.to_bytes(256, "big")

    # per transaction
    def record(self, transaction_hash: bytes) -> TransactionRecord | None:
        encoded = self._get(_RECORD + transaction_hash)
        return TransactionRecord.from_bytes(encoded) if encoded else None

    def set_record(self, record: TransactionRecord) -> None:
        self._db[_RECORD + record.transaction_hash] = record.to_bytes()

    # per contract and group
    def contract(self, address: Address) -> PrivateContract | None:
        encoded = self._get(_CONTRACT + address)
        return PrivateContract.from_bytes(encoded) if encoded else None

    def set_contract(self, address: Address, contract: PrivateContract) -> None:
        self._db[_CONTRACT + address] = contract.to_bytes()

    def group_members(self, group_id: bytes) -> list[str]:
        encoded = self._get(_GROUP + group_id)
        return [key.decode() for key in rlp.decode(encoded)] if encoded else []

    def set_group_members(self, group_id: bytes, members: list[str]) -> None:
        self._db[_GROUP + group_id] = bytes(rlp.encode([key.encode() for key in sorted(members)]))

    def group_contracts(self, group_id: bytes) -> list[Address]:
        encoded = self._get(_GROUP_CONTRACTS + group_id)
        return [Address(address) for address in rlp.decode(encoded)] if encoded else []

    def add_group_contracts(self, group_id: bytes, addresses: list[Address]) -> None:
        known = self.group_contracts(group_id)
        added = [address for address in addresses if address not in set(known)]
        if added:
            self._db[_GROUP_CONTRACTS + group_id] = bytes(rlp.encode(known + added))

    # per block and group: what the group executed (disclosure of a group's history)
    def block_groups(self, block_hash: bytes) -> dict[bytes, list[tuple[Hash32, bytes]]]:
        """Group id → (transaction hash, payload hash) of each private transaction the
        group executed in the block, in block order."""
        encoded = self._get(_BLOCK_GROUPS + block_hash)
        if encoded is None:
            return {}
        return {
            group: [(Hash32(tx_hash), payload_hash) for tx_hash, payload_hash in entries]
            for group, entries in rlp.decode(encoded)
        }

    def set_block_groups(
        self, block_hash: bytes, executed: dict[bytes, list[tuple[Hash32, bytes]]]
    ) -> None:
        if executed:
            items = [
                [group, [list(entry) for entry in entries]] for group, entries in executed.items()
            ]
            self._db[_BLOCK_GROUPS + block_hash] = bytes(rlp.encode(sorted(items)))
