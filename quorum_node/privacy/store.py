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
  ``quorum_groupContracts``; contracts created before this index existed are not listed);
* per group change this node is party to, its record, and what follows from it: the
  group it froze, the group that succeeds it, the hand-overs received
  (``privacy.group_change``).
"""

from __future__ import annotations

from dataclasses import dataclass

import rlp
from eth.abc import DatabaseAPI
from eth_typing import Address, Hash32

from quorum_node.chain.records import TransactionRecord
from quorum_node.privacy.group_change import GroupChange

_ROOTS = b"quorum-py:private-roots:"
_RECORD = b"quorum-py:private-record:"
_CONTRACT = b"quorum-py:private-contract:"
_BLOOM = b"quorum-py:private-bloom:"
_GROUP = b"quorum-py:private-group:"
_GROUP_CONTRACTS = b"quorum-py:group-contracts:"
_BLOCK_GROUPS = b"quorum-py:block-groups:"
_CHANGE = b"quorum-py:group-change:"
_CHANGES = b"quorum-py:group-changes"
_FROZEN = b"quorum-py:group-frozen:"
_SUCCESSIONS = b"quorum-py:group-successions:"
_PREDECESSOR = b"quorum-py:group-predecessor:"
_PENDING = b"quorum-py:group-pending"
_HANDOVER = b"quorum-py:group-handover:"
_HANDOVER_SENT = b"quorum-py:group-handover-sent:"


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

    # per group change (``privacy.group_change``)
    def change(self, change_id: bytes) -> GroupChange | None:
        encoded = self._get(_CHANGE + change_id)
        return GroupChange.from_bytes(encoded) if encoded else None

    def set_change(self, change: GroupChange) -> None:
        if self._get(_CHANGE + change.change_id) is None:
            self._db[_CHANGES] = bytes(rlp.encode([*self.change_ids(), change.change_id]))
        self._db[_CHANGE + change.change_id] = change.to_bytes()

    def change_ids(self) -> list[bytes]:
        """Every change this node is party to, oldest first."""
        encoded = self._get(_CHANGES)
        return [bytes(change_id) for change_id in rlp.decode(encoded)] if encoded else []

    def frozen_by(self, group_id: bytes) -> bytes | None:
        """The change that froze ``group_id`` (at its activation block), if any."""
        return self._get(_FROZEN + group_id)

    def set_frozen(self, group_id: bytes, change_id: bytes) -> None:
        self._db[_FROZEN + group_id] = change_id

    def successions(self, block_hash: bytes) -> list[tuple[bytes, bytes | None]]:
        """(G, G′ or None) for each group frozen in this block: from the next block on,
        G's root moves to G′ (a staying member) or is dropped (a removed one)."""
        encoded = self._get(_SUCCESSIONS + block_hash)
        if encoded is None:
            return []
        return [(bytes(old), bytes(new) or None) for old, new in rlp.decode(encoded)]

    def set_successions(self, block_hash: bytes, moves: list[tuple[bytes, bytes | None]]) -> None:
        if moves:
            items = [[old, new or b""] for old, new in moves]
            self._db[_SUCCESSIONS + block_hash] = bytes(rlp.encode(items))

    def predecessor(self, group_id: bytes) -> tuple[bytes, int] | None:
        """(G, H) if ``group_id`` is G′ of a change that activated at block H."""
        encoded = self._get(_PREDECESSOR + group_id)
        if encoded is None:
            return None
        old, height = rlp.decode(encoded)
        return bytes(old), int.from_bytes(height, "big")

    def set_predecessor(self, group_id: bytes, old_group: bytes, height: int) -> None:
        self._db[_PREDECESSOR + group_id] = bytes(rlp.encode([old_group, height]))

    def pending_groups(self) -> dict[bytes, bytes]:
        """G′ → change id, for each group this node joins and holds no state of yet."""
        encoded = self._get(_PENDING)
        return (
            {bytes(group): bytes(change) for group, change in rlp.decode(encoded)}
            if encoded
            else {}
        )

    def set_pending_groups(self, pending: dict[bytes, bytes]) -> None:
        self._db[_PENDING] = bytes(rlp.encode(sorted(pending.items())))

    def handovers(self, change_id: bytes) -> list[tuple[str, bytes]]:
        """(old member key, hand-over message) for each hand-over sent to this node."""
        encoded = self._get(_HANDOVER + change_id)
        return [(key.decode(), bytes(body)) for key, body in rlp.decode(encoded)] if encoded else []

    def add_handover(self, change_id: bytes, sender: str, message: bytes) -> None:
        items = [[key.encode(), body] for key, body in self.handovers(change_id)]
        items.append([sender.encode(), message])
        self._db[_HANDOVER + change_id] = bytes(rlp.encode(items))

    def handover_sent(self, change_id: bytes) -> bool:
        return self._get(_HANDOVER_SENT + change_id) is not None

    def set_handover_sent(self, change_id: bytes) -> None:
        self._db[_HANDOVER_SENT + change_id] = b"\x01"
