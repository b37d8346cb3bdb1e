"""GoQuorum's privacy methods: eth_sendRawPrivateTransaction, eth_getQuorumPayload,
eth_storageRoot, eth_getContractPrivacyMetadata, eth_getPrivacyPrecompileAddress and
debug_privateStateRoot. (Sending with ``privateFor`` is eth_sendTransaction's.)"""

from __future__ import annotations

from typing import Any, cast

from eth.constants import CREATE_CONTRACT_ADDRESS
from eth.db.account import AccountDB
from eth.vm.state import BaseState
from eth_hash.auto import keccak

from quorum_node.chain.transactions import PRIVATE_PAYLOAD_HASH_SIZE
from quorum_node.node import Node
from quorum_node.privacy.sending import (
    PrivacyError,
    PrivateSender,
    check_private_shape,
    parse_privacy,
)
from quorum_node.rpc import formatting as fmt
from quorum_node.rpc import params as p
from quorum_node.rpc.dispatcher import CallContext, rpc_method
from quorum_node.rpc.errors import InvalidParams, ServerError
from quorum_node.rpc.eth import check_contract_group, state_header

#: GoQuorum's privacy precompile address (used by its privacy marker transactions).
PRIVACY_PRECOMPILE_ADDRESS = "0x000000000000000000000000000000000000007a"


class QuorumNamespace:
    def __init__(self, node: Node, private_sender: PrivateSender) -> None:
        self.node = node
        self.sender = private_sender

    @rpc_method("eth_sendRawPrivateTransaction")
    async def send_raw_private_transaction(self, params: Any, context: CallContext) -> str:
        raw, options = p.expect_params(params, 1, 2)
        transaction = self.node.decode_raw_transaction(p.data(raw, "signed transaction"))
        if not isinstance(options, dict):
            raise ServerError("transaction is not private")
        privacy = parse_privacy(options)
        if privacy is None:
            raise ServerError("transaction is not private")
        try:
            check_private_shape(transaction)
        except PrivacyError as exc:
            raise ServerError(str(exc)) from None
        default_key = await self.sender.default_key()
        to = None if transaction.to == CREATE_CONTRACT_ADDRESS else bytes(transaction.to)
        await self.node.executor.run(check_contract_group, self.node, to, privacy, default_key)
        await self.sender.distribute_signed(bytes(transaction.data), privacy)
        return fmt.hex_data(await self.node.submit(transaction))

    @rpc_method("eth_getQuorumPayload")
    async def get_quorum_payload(self, params: Any, context: CallContext) -> str:
        (hash_raw,) = p.expect_params(params, 1, 1)
        payload_hash = p.data(hash_raw, "payload hash")
        if len(payload_hash) != PRIVATE_PAYLOAD_HASH_SIZE:
            raise InvalidParams(
                f"payload hash: expected {PRIVATE_PAYLOAD_HASH_SIZE} bytes, got {len(payload_hash)}"
            )
        payload = await self.sender.payload(payload_hash)
        return fmt.hex_data(payload or b"")

    @rpc_method("eth_storageRoot")
    async def storage_root(self, params: Any, context: CallContext) -> str:
        address_raw, block_raw = p.expect_params(params, 1, 2)
        address = p.address(address_raw, "address")
        block = p.block_id(block_raw)

        def read() -> bytes:
            state = self.node.chain.state_for(state_header(self.node, block), address)
            account_db = cast(AccountDB, cast(BaseState, state)._account_db)  # noqa: SLF001
            return bytes(account_db._get_storage_root(address))  # noqa: SLF001

        return fmt.hex_data(await self.node.executor.run(read))

    @rpc_method("eth_getContractPrivacyMetadata")
    async def contract_privacy_metadata(self, params: Any, context: CallContext) -> Any:
        (address_raw,) = p.expect_params(params, 1, 1)
        address = p.address(address_raw, "address")
        contract = await self.node.executor.run(self.node.chain.privacy.store.contract, address)
        if contract is None:
            return None
        return {
            "creationTxHash": fmt.hex_data(contract.creation_transaction),
            "privacyFlag": contract.privacy_flag,
            "mandatoryFor": [],
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
        roots = await self._roots(block_raw)
        digest = keccak(b"".join(group + root for group, root in sorted(roots.items())))
        return fmt.hex_data(digest if roots else b"\x00" * 32)

    @rpc_method("debug_privateStateRoots")
    async def private_state_roots(self, params: Any, context: CallContext) -> dict[str, str]:
        (block_raw,) = p.expect_params(params, 1, 1)
        roots = await self._roots(block_raw)
        return {fmt.hex_data(group): fmt.hex_data(root) for group, root in sorted(roots.items())}

    async def _roots(self, block_raw: Any) -> dict[bytes, bytes]:
        block = p.block_id(block_raw)

        def read() -> dict[bytes, bytes]:
            header = state_header(self.node, block)
            return dict(self.node.chain.privacy.store.roots_after(header.hash))

        return await self.node.executor.run(read)
