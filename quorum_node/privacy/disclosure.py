"""Disclosing past private transactions to a third party, with proof
(``quorum_discloseTransaction``, ``quorum_discloseGroup``; docs/disclosure.md).

The node knows where each private transaction it executed lies (its private record and
``PrivateStore.block_groups``) and what it computed; its manager holds the envelope and
the key. The manager seals the transaction's key for the recipient and signs the bundle;
the node assembles it (``disclosure_bundle``). Only a party can disclose: its manager
holds the envelope, a non-party's does not.
"""

from __future__ import annotations

import asyncio
from typing import Any

from eth_utils import to_checksum_address

from quorum_node.chain.records import TransactionRecord
from quorum_node.node import Node
from quorum_node.privacy.audit_service import AuditService
from quorum_node.privacy.disclosure_bundle import (
    GROUP_KIND,
    TRANSACTION_KIND,
    DisclosedTransaction,
    bundle_digest,
)
from quorum_node.privacy.params import PrivacyError
from quorum_node.privacy.store import PrivateStore
from tx_manager.client import ClientError, Q2TClient

#: Envelopes asked of the manager at once while disclosing a group's history.
CONCURRENT_ENVELOPES = 32


def receipt_json(record: TransactionRecord) -> dict[str, Any]:
    """The private outcome as the discloser computed it (what its receipt shows)."""
    return {
        "status": record.status,
        "gasUsed": record.gas_used,
        "contractAddress": (
            to_checksum_address(record.contract_address) if record.contract_address else None
        ),
        "logs": [
            {
                "address": to_checksum_address(log.address),
                "topics": ["0x" + topic.hex() for topic in log.topics],
                "data": "0x" + log.data.hex(),
            }
            for log in record.logs
        ],
    }


class DisclosureService:
    def __init__(
        self,
        node: Node,
        store: PrivateStore,
        manager: Q2TClient | None,
        audit: AuditService | None,
    ) -> None:
        self._node = node
        self._store = store
        self._manager = manager
        self._audit = audit

    def _require_manager(self) -> Q2TClient:
        if self._manager is None:
            raise PrivacyError("this node has no transaction manager: nothing to disclose")
        return self._manager

    async def disclose_transaction(self, transaction_hash: bytes, recipient: str) -> dict[str, Any]:
        manager = self._require_manager()

        def find() -> tuple[TransactionRecord, bytes, bytes] | None:
            record = self._store.record(transaction_hash)
            if record is None:
                return None
            for group_id, executed in self._store.block_groups(record.block_hash).items():
                for executed_hash, payload_hash in executed:
                    if executed_hash == transaction_hash:
                        return record, group_id, payload_hash
            return None

        found = await self._node.executor.run(find)
        if found is None:
            raise PrivacyError(
                f"this node is not a party to transaction 0x{transaction_hash.hex()} "
                "(or executed it before disclosure was possible): only a party can disclose it"
            )
        record, group_id, payload_hash = found
        item = await self._disclosed(manager, record, payload_hash, recipient, None)
        bundle = {
            "kind": TRANSACTION_KIND,
            "chainId": self._node.chain_id,
            "groupId": "0x" + group_id.hex(),
            "transaction": item.to_json(),
        }
        return await self._signed(manager, bundle)

    async def disclose_group(self, group_id: bytes, height: int, recipient: str) -> dict[str, Any]:
        manager = self._require_manager()
        if self._audit is None:
            raise PrivacyError(
                "this node has no audit of its groups: nothing to prove a history by"
            )
        commitments = self._audit.signed_at(group_id, height)
        if commitments is None:
            agreed = self._audit.agreed_height(group_id)
            raise PrivacyError(
                f"not every member's signed root of group 0x{group_id.hex()} at height {height} "
                "is known here: disclose at a height all members signed"
                + (f" (the last is {agreed})" if agreed is not None else " (none yet)")
            )

        def history() -> tuple[bytes, list[str], list[tuple[TransactionRecord, bytes]], list[Any]]:
            chain = self._node.chain
            target = chain.header_by_number(height)
            if target is None:
                raise PrivacyError(f"block {height} is not in this node's chain")
            members = self._store.group_members(group_id)
            entries: list[tuple[TransactionRecord, bytes]] = []
            roots: list[dict[str, Any]] = []
            for number in range(1, height + 1):
                header = chain.header_by_number(number)
                assert header is not None  # noqa: S101 - below the head
                executed = self._store.block_groups(header.hash).get(group_id)
                if not executed:
                    continue
                for transaction_hash, payload_hash in executed:
                    record = self._store.record(transaction_hash)
                    assert record is not None  # noqa: S101 - written with the index
                    entries.append((record, payload_hash))
                root = self._store.roots_after(header.hash)[group_id]
                roots.append({"blockNumber": number, "root": "0x" + bytes(root).hex()})
            return bytes(target.hash), members, entries, roots

        block_hash, members, entries, roots = await self._node.executor.run(history)
        discloser = await self._member_key(manager, members)
        items: list[DisclosedTransaction] = []
        for start in range(0, len(entries), CONCURRENT_ENVELOPES):
            chunk = entries[start : start + CONCURRENT_ENVELOPES]
            items += await asyncio.gather(
                *(
                    self._disclosed(manager, record, ph, recipient, discloser)
                    for record, ph in chunk
                )
            )
        bundle = {
            "kind": GROUP_KIND,
            "chainId": self._node.chain_id,
            "groupId": "0x" + group_id.hex(),
            "members": sorted(members),
            "height": height,
            "blockHash": "0x" + block_hash.hex(),
            "transactions": [item.to_json() for item in items],
            "roots": roots,
            "commitments": [c.to_json() for c in commitments],
        }
        return await self._signed(manager, bundle)

    @staticmethod
    async def _member_key(manager: Q2TClient, members: list[str]) -> str:
        """The key this node's manager holds in the group: the one that discloses."""
        try:
            held = set(await manager.keys())
        except ClientError as exc:
            raise PrivacyError(f"transaction manager unavailable: {exc}") from None
        mine = sorted(held & set(members))
        if not mine:
            raise PrivacyError("this node's manager holds no key of the group")
        return mine[0]

    async def _disclosed(
        self,
        manager: Q2TClient,
        record: TransactionRecord,
        payload_hash: bytes,
        recipient: str,
        discloser: str | None,
    ) -> DisclosedTransaction:
        try:
            envelope = await manager.disclose(payload_hash, recipient, discloser)
        except ClientError as exc:
            raise PrivacyError(f"the transaction manager refused to disclose: {exc}") from None
        return DisclosedTransaction(
            block_number=record.block_number,
            block_hash=bytes(record.block_hash),
            transaction_hash=bytes(record.transaction_hash),
            transaction_index=record.index,
            payload_hash=payload_hash,
            envelope=envelope.to_json(),
            receipt=receipt_json(record),
        )

    @staticmethod
    async def _signed(manager: Q2TClient, bundle: dict[str, Any]) -> dict[str, Any]:
        """Signed by the identity of the key that disclosed the envelopes."""
        items = bundle.get("transactions") or [bundle["transaction"]]
        discloser = items[0]["envelope"]["discloser"] if items else None
        try:
            signature = await manager.sign_disclosure(bundle_digest(bundle), discloser)
        except ClientError as exc:
            raise PrivacyError(f"the transaction manager did not sign the bundle: {exc}") from None
        bundle["signature"] = {
            "key": signature.key,
            "signer": "0x" + signature.signer.hex(),
            "signature": "0x" + signature.signature.hex(),
        }
        return bundle
