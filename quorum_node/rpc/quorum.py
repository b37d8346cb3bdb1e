"""GoQuorum's privacy methods: eth_sendRawPrivateTransaction, eth_getQuorumPayload,
eth_storageRoot, eth_getContractPrivacyMetadata, eth_getPrivacyPrecompileAddress and
debug_privateStateRoot(s); and the audit of party groups: quorum_auditStatus and
quorum_groupContracts (docs/audit.md). (Sending with ``privateFor`` is
eth_sendTransaction's.) Each translates JSON to a ``PrivacyService`` or ``AuditService``
call and back."""

from __future__ import annotations

from typing import Any

from eth_hash.auto import keccak

from quorum_node.chain.transactions import PRIVATE_PAYLOAD_HASH_SIZE
from quorum_node.privacy.audit_service import AuditService
from quorum_node.privacy.disclosure import DisclosureService
from quorum_node.privacy.params import manager_key
from quorum_node.privacy.service import PrivacyService
from quorum_node.rpc import formatting as fmt
from quorum_node.rpc import params as p
from quorum_node.rpc.dispatcher import CallContext, rpc_method
from quorum_node.rpc.errors import InvalidParams, ServerError

#: GoQuorum's privacy precompile address (used by its privacy marker transactions).
PRIVACY_PRECOMPILE_ADDRESS = "0x000000000000000000000000000000000000007a"


class QuorumNamespace:
    def __init__(
        self,
        privacy: PrivacyService,
        audit: AuditService | None = None,
        disclosure: DisclosureService | None = None,
    ) -> None:
        self.privacy = privacy
        self.audit = audit
        self.disclosure = disclosure

    def _disclosure(self) -> DisclosureService:
        if self.disclosure is None:
            raise ServerError("this node has no transaction manager: nothing to disclose")
        return self.disclosure

    @rpc_method("quorum_discloseTransaction")
    async def disclose_transaction(self, params: Any, context: CallContext) -> dict[str, Any]:
        """A signed bundle that shows ``recipientKey``'s holder one past private
        transaction, with what it takes to check it (docs/disclosure.md)."""
        hash_raw, recipient_raw = p.expect_params(params, 2, 2)
        transaction_hash = p.block_hash(hash_raw, "transaction hash")
        recipient = manager_key(recipient_raw, "recipient key")
        return await self._disclosure().disclose_transaction(transaction_hash, recipient)

    @rpc_method("quorum_discloseGroup")
    async def disclose_group(self, params: Any, context: CallContext) -> dict[str, Any]:
        """Every transaction of a party group up to a height, with every member's signed
        root at that height (docs/disclosure.md)."""
        group_raw, height_raw, recipient_raw = p.expect_params(params, 3, 3)
        group_id = p.data(group_raw, "group id")
        if len(group_id) != 32:
            raise InvalidParams(f"group id: expected 32 bytes, got {len(group_id)}")
        height = p.quantity(height_raw, "height", 2**63)
        recipient = manager_key(recipient_raw, "recipient key")
        return await self._disclosure().disclose_group(group_id, height, recipient)

    @rpc_method("quorum_auditStatus")
    async def audit_status(self, params: Any, context: CallContext) -> list[dict[str, Any]]:
        p.expect_params(params, 0, 0)
        return [] if self.audit is None else await self.audit.status()

    @rpc_method("quorum_groupContracts")
    async def group_contracts(self, params: Any, context: CallContext) -> list[dict[str, Any]]:
        group_raw, block_raw = p.expect_params(params, 1, 2)
        group_id = p.data(group_raw, "group id")
        if len(group_id) != 32:
            raise InvalidParams(f"group id: expected 32 bytes, got {len(group_id)}")
        accounts = await self.privacy.group_contracts(group_id, p.block_id(block_raw))
        return [
            {
                "address": fmt.checksum(account.address),
                "nonce": fmt.hex_quantity(account.nonce),
                "balance": fmt.hex_quantity(account.balance),
                "codeHash": fmt.hex_data(account.code_hash),
                "storageRoot": fmt.hex_data(account.storage_root),
            }
            for account in accounts
        ]

    @rpc_method("eth_sendRawPrivateTransaction")
    async def send_raw_private_transaction(self, params: Any, context: CallContext) -> str:
        raw, options = p.expect_params(params, 1, 2)
        transaction_hash = await self.privacy.send_raw_private_transaction(
            p.data(raw, "signed transaction"), options
        )
        return fmt.hex_data(transaction_hash)

    @rpc_method("eth_getQuorumPayload")
    async def get_quorum_payload(self, params: Any, context: CallContext) -> str:
        (hash_raw,) = p.expect_params(params, 1, 1)
        payload_hash = p.data(hash_raw, "payload hash")
        if len(payload_hash) != PRIVATE_PAYLOAD_HASH_SIZE:
            raise InvalidParams(
                f"payload hash: expected {PRIVATE_PAYLOAD_HASH_SIZE} bytes, got {len(payload_hash)}"
            )
        payload = await self.privacy.payload(payload_hash)
        return fmt.hex_data(payload or b"")

    @rpc_method("eth_storageRoot")
    async def storage_root(self, params: Any, context: CallContext) -> str:
        address_raw, block_raw = p.expect_params(params, 1, 2)
        address = p.address(address_raw, "address")
        return fmt.hex_data(await self.privacy.storage_root(address, p.block_id(block_raw)))

    @rpc_method("eth_getContractPrivacyMetadata")
    async def contract_privacy_metadata(self, params: Any, context: CallContext) -> Any:
        (address_raw,) = p.expect_params(params, 1, 1)
        contract = await self.privacy.contract(p.address(address_raw, "address"))
        if contract is None:
            return None
        return {
            "creationTxHash": fmt.hex_data(contract.creation_transaction),
            "privacyFlag": contract.privacy_flag,
            "mandatoryFor": list(contract.mandatory_for),
            "privacyGroupId": fmt.hex_data(contract.group_id),
        }

    @rpc_method("eth_getPrivacyPrecompileAddress")
    async def privacy_precompile_address(self, params: Any, context: CallContext) -> str:
        p.expect_params(params, 0, 0)
        return PRIVACY_PRECOMPILE_ADDRESS

    @rpc_method("debug_privateStateRoot")
    async def private_state_root(self, params: Any, context: CallContext) -> str:
        """One root for this node's private state at a block.

        Private state is kept per party group here, so the single root GoQuorum reports
        is a digest over (group id, group root) pairs; ``debug_privateStateRoots`` lists them.
        """
        (block_raw,) = p.expect_params(params, 1, 1)
        roots = await self.privacy.private_roots(p.block_id(block_raw))
        digest = keccak(b"".join(group + root for group, root in sorted(roots.items())))
        return fmt.hex_data(digest if roots else b"\x00" * 32)

    @rpc_method("debug_privateStateRoots")
    async def private_state_roots(self, params: Any, context: CallContext) -> dict[str, str]:
        (block_raw,) = p.expect_params(params, 1, 1)
        roots = await self.privacy.private_roots(p.block_id(block_raw))
        return {fmt.hex_data(group): fmt.hex_data(root) for group, root in sorted(roots.items())}
