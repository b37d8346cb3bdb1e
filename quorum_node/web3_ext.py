"""``w3.quorum``: Quorum privacy for web3.py users.

No Python client for Quorum's privacy methods existed (web3js-quorum is JavaScript
only), so this module gives web3.py 8 what web3js-quorum gives web3.js::

    from web3 import Web3
    from quorum_node.web3_ext import attach_quorum

    w3 = attach_quorum(Web3(Web3.HTTPProvider(node_url)))
    tx_hash = w3.quorum.send_transaction(
        {"from": w3.eth.accounts[0], "to": contract, "data": call_data},
        private_for=[counterparty_manager_key],
    )
    receipt = w3.quorum.wait_for_private_receipt(tx_hash)

Offline signing follows web3js-quorum: the payload goes to the sender's manager with
``/storeraw``, the transaction carrying its hash is signed locally with v = 37/38, and
``send_raw_private_transaction`` has the node distribute and submit it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_keys.datatypes import PrivateKey
from eth_utils import to_bytes, to_canonical_address
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import TransactionNotFound
from web3.module import Module

from quorum_node.chain.transactions import (
    PRIVATE_MIN_GAS,
    private_gas_limit,
    sign_private,
    unsigned_private_transaction,
)
from quorum_node.privacy.flags import STATE_VALIDATION_EXEC_HASH
from quorum_node.privacy.params import STATE_VALIDATION
from quorum_shared.commitments import verify_json
from tx_manager.client import SyncQ2TClient


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def _hex_or_text(value: bytes | str) -> str:
    """A hash as the caller gave it (0x text) or as bytes, in JSON-RPC's 0x form."""
    return value if isinstance(value, str) else _hex(value)


def _plain(value: Any) -> Any:
    """web3.py's AttributeDicts as plain dicts and lists: a bundle is saved as JSON."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


class QuorumModule(Module):  # type: ignore[misc]
    """Attached as ``w3.quorum`` by ``attach_quorum``."""

    w3: Web3

    def _call(self, method: str, params: list[Any]) -> Any:
        return self.w3.manager.request_blocking(method, params)  # type: ignore[arg-type]

    def send_transaction(
        self,
        transaction: dict[str, Any],
        private_for: list[str],
        private_from: str | None = None,
        privacy_flag: int = 0,
        mandatory_for: list[str] | None = None,
    ) -> HexBytes:
        """``eth_sendTransaction`` with ``privateFor`` from an account the node holds;
        ``privacy_flag`` and ``mandatory_for`` are GoQuorum's ``privacyFlag`` and
        ``mandatoryFor`` (flag 2)."""
        request = {key: value for key, value in transaction.items() if value is not None}
        request["privateFor"] = list(private_for)
        if private_from is not None:
            request["privateFrom"] = private_from
        if privacy_flag:
            request["privacyFlag"] = privacy_flag
        if mandatory_for:
            request["mandatoryFor"] = list(mandatory_for)
        for key in ("value", "gas", "gasPrice", "nonce"):
            if isinstance(request.get(key), int):
                request[key] = hex(request[key])
        if isinstance(request.get("data"), bytes | bytearray):
            request["data"] = _hex(request["data"])
        return HexBytes(self._call("eth_sendTransaction", [request]))

    def sign_private_transaction(
        self,
        account: LocalAccount | bytes | str,
        transaction: dict[str, Any],
        manager_url: str,
        private_from: str | None = None,
        privacy_flag: int = 0,
        mandatory_for: list[str] | None = None,
    ) -> HexBytes:
        """Store the payload at ``manager_url`` and sign the transaction carrying its hash.

        ``transaction`` takes ``to`` (absent for a creation), ``data``, and optionally
        ``nonce``, ``gas`` and ``gasPrice`` (0 by default); a missing nonce is read from
        the node, a missing gas is estimated against the private state when
        ``privateFor`` is given in ``transaction``. With ``privateFor`` the manager also
        fixes the party group under the payload's hash (``send_raw_private_transaction``
        must then name the same parties, ``privacy_flag`` and ``mandatory_for``, which
        are fixed with them). Returns the raw signed transaction.
        """
        key = _private_key(account)
        sender = key.public_key.to_checksum_address()
        payload = (
            to_bytes(hexstr=transaction["data"])
            if isinstance(transaction.get("data"), str)
            else bytes(transaction.get("data", b""))
        )
        to = transaction.get("to")
        nonce = transaction.get("nonce")
        if nonce is None:
            nonce = self.w3.eth.get_transaction_count(sender, "pending")
        gas = transaction.get("gas")
        if gas is None:
            estimate_request: dict[str, Any] = {"from": sender, "data": _hex(payload)}
            if to:
                estimate_request["to"] = to
            if "privateFor" in transaction:
                estimate_request["privateFor"] = transaction["privateFor"]
            gas = private_gas_limit(int(self._call("eth_estimateGas", [estimate_request]), 16))
        private_for = transaction.get("privateFor")
        with SyncQ2TClient(manager_url) as manager:
            # With the parties named now, the manager puts the group under the hash.
            payload_hash = manager.store_raw(
                payload,
                private_from,
                to=None if private_for is None else list(private_for),
                privacy_flag=privacy_flag if private_for is not None else 0,
                exec_hash=(
                    STATE_VALIDATION_EXEC_HASH
                    if private_for is not None and privacy_flag == STATE_VALIDATION
                    else b""
                ),
                mandatory_recipients=list(mandatory_for or []) if private_for is not None else [],
            )
        unsigned = unsigned_private_transaction(
            nonce=int(nonce),
            gas=max(int(gas), PRIVATE_MIN_GAS),
            gas_price=int(transaction.get("gasPrice", 0)),
            to=to_canonical_address(to) if to else None,
            payload_hash=payload_hash,
        )
        return HexBytes(sign_private(unsigned, key).encode())

    def send_raw_private_transaction(
        self,
        raw_transaction: bytes | str,
        private_for: list[str],
        privacy_flag: int = 0,
        mandatory_for: list[str] | None = None,
    ) -> HexBytes:
        raw = raw_transaction if isinstance(raw_transaction, str) else _hex(raw_transaction)
        options: dict[str, Any] = {"privateFor": list(private_for)}
        if privacy_flag:
            options["privacyFlag"] = privacy_flag
        if mandatory_for:
            options["mandatoryFor"] = list(mandatory_for)
        return HexBytes(self._call("eth_sendRawPrivateTransaction", [raw, options]))

    def get_quorum_payload(self, payload_hash: bytes | str) -> HexBytes:
        """The payload on a party's node; empty bytes elsewhere."""
        value = payload_hash if isinstance(payload_hash, str) else _hex(payload_hash)
        return HexBytes(self._call("eth_getQuorumPayload", [value]))

    def storage_root(self, address: str, block: str | int = "latest") -> HexBytes:
        block_id = hex(block) if isinstance(block, int) else block
        return HexBytes(self._call("eth_storageRoot", [address, block_id]))

    def get_contract_privacy_metadata(self, address: str) -> Any:
        return self._call("eth_getContractPrivacyMetadata", [address])

    def privacy_precompile_address(self) -> str:
        return str(self._call("eth_getPrivacyPrecompileAddress", []))

    def group_contracts(self, group_id: str, block: str | int = "latest") -> list[dict[str, Any]]:
        """``quorum_groupContracts``: the accounts of a party group's private state."""
        block_param = hex(block) if isinstance(block, int) else block
        return list(_plain(self._call("quorum_groupContracts", [group_id, block_param])))

    def disclose_transaction(self, transaction_hash: bytes | str, recipient_key: str) -> Any:
        """``quorum_discloseTransaction``: a signed bundle showing ``recipient_key``'s
        holder one private transaction this node is party to (docs/disclosure.md)."""
        as_hex = _hex_or_text(transaction_hash)
        return _plain(self._call("quorum_discloseTransaction", [as_hex, recipient_key]))

    def disclose_group(self, group_id: str, height: int, recipient_key: str) -> Any:
        """``quorum_discloseGroup``: a party group's whole history up to ``height``, with
        every member's signed root there."""
        return _plain(self._call("quorum_discloseGroup", [group_id, hex(height), recipient_key]))

    def audit_status(self) -> list[dict[str, Any]]:
        """``quorum_auditStatus``: per party group, whether its members' signed roots agree."""
        return list(_plain(self._call("quorum_auditStatus", [])))

    # --- group changes (docs/group-changes.md) ------------------------------------------

    def propose_group_change(
        self,
        sender: str,
        *,
        group_id: str | None = None,
        contract: str | None = None,
        add: list[str] | None = None,
        remove: list[str] | None = None,
        scope: str = "state",
    ) -> HexBytes:
        """``quorum_proposeGroupChange``: add and/or remove parties of a group (named by
        its id or one of its contracts); the change id (the proposal's transaction)."""
        change: dict[str, Any] = {"add": add or [], "remove": remove or [], "scope": scope}
        if group_id is not None:
            change["groupId"] = group_id
        if contract is not None:
            change["contract"] = contract
        return HexBytes(self._call("quorum_proposeGroupChange", [change, {"from": sender}]))

    def extend_contract(
        self, contract: str, new_party_key: str, sender: str, scope: str = "state"
    ) -> HexBytes:
        """``quorumExtension_extendContract``: add one party to the contract's group."""
        args = {"from": sender, "scope": scope}
        return HexBytes(
            self._call("quorumExtension_extendContract", [contract, new_party_key, None, args])
        )

    def approve_extension(self, change_id: bytes | str, sender: str, vote: bool = True) -> HexBytes:
        """``quorumExtension_approveExtension``: approve (or, ``vote=False``, reject)."""
        as_hex = _hex_or_text(change_id)
        return HexBytes(
            self._call("quorumExtension_approveExtension", [as_hex, vote, {"from": sender}])
        )

    def cancel_extension(self, change_id: bytes | str, sender: str) -> HexBytes:
        as_hex = _hex_or_text(change_id)
        return HexBytes(self._call("quorumExtension_cancelExtension", [as_hex, {"from": sender}]))

    def active_extension_contracts(self) -> list[dict[str, Any]]:
        return list(_plain(self._call("quorumExtension_activeExtensionContracts", [])))

    def get_extension_status(self, change_id: bytes | str) -> str:
        as_hex = _hex_or_text(change_id)
        return str(self._call("quorumExtension_getExtensionStatus", [as_hex]))

    def get_group_change(self, change_id: bytes | str) -> Any:
        """``quorum_getGroupChange``: votes, status, activation block, hand-over."""
        as_hex = _hex_or_text(change_id)
        return _plain(self._call("quorum_getGroupChange", [as_hex]))

    def group_changes(self) -> list[dict[str, Any]]:
        return list(_plain(self._call("quorum_groupChanges", [])))

    @staticmethod
    def verify_commitment(commitment: dict[str, Any]) -> bool:
        """Whether a signed group-root commitment (from an alarm's evidence, or anyone's)
        carries a valid signature by its ``signer`` over exactly its fields. Offline: no
        node is asked. Which manager key the signer belongs to is what the group's
        members established when they exchanged commitments (docs/audit.md)."""
        return verify_json(commitment)

    def wait_for_private_receipt(
        self, transaction_hash: bytes | str, timeout: float = 30.0, poll_latency: float = 0.05
    ) -> Any:
        """The receipt as this node sees it (the private result on a party's node)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.w3.eth.get_transaction_receipt(transaction_hash)  # type: ignore[arg-type]
            except TransactionNotFound:
                if time.monotonic() > deadline:
                    raise
                time.sleep(poll_latency)


def _private_key(account: LocalAccount | bytes | str) -> PrivateKey:
    if isinstance(account, LocalAccount):
        return PrivateKey(bytes(account.key))
    if isinstance(account, str):
        return PrivateKey(to_bytes(hexstr=account))
    return PrivateKey(bytes(account))


def attach_quorum(w3: Web3) -> Web3:
    """Attach ``w3.quorum`` (idempotent) and return ``w3``."""
    if not hasattr(w3, "quorum"):
        w3.attach_modules({"quorum": QuorumModule})
    return w3


def quorum_module(w3: Web3) -> QuorumModule:
    """``w3.quorum`` with its type, for a ``w3`` that ``attach_quorum`` has seen."""
    # web3.py's Web3 does not declare modules attached at run time.
    return w3.quorum  # type: ignore[attr-defined]
