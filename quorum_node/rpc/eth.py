"""The ``eth_`` namespace: chain reads, state reads, calls and transactions.

Handlers parse their parameters (``params``), call the chain (on the chain thread,
``node.executor``) or a use case (``privacy.service.PrivacyService`` for sends, calls
and state reads that may be private; ``sending.TransactionSender`` for signing), and
shape results as geth does (``formatting``). Blocks, filters and subscriptions live in
``eth_filters``.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from eth.abc import BlockHeaderAPI
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_typing import Address

from quorum_node.block_id import resolve_header, state_header
from quorum_node.chain import calls
from quorum_node.chain.calls import AccountOverride
from quorum_node.chain.records import TransactionRecord
from quorum_node.node import Node
from quorum_node.privacy.service import PrivacyService
from quorum_node.rpc import formatting as fmt
from quorum_node.rpc import params as p
from quorum_node.rpc.dispatcher import CallContext, rpc_method
from quorum_node.rpc.errors import InvalidParams, ServerError
from quorum_node.rpc.signing import check_typed_data_arrays
from quorum_node.sending import TransactionSender
from quorum_node.signing import SUGGESTED_TIP
from quorum_node.transaction_request import ZERO_ADDRESS

T = TypeVar("T")


def parse_overrides(value: Any) -> dict[Address, AccountOverride]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidParams("state override: expected an object")
    overrides = {}
    for address_text, entry in value.items():
        address = p.address(address_text, "state override address")
        if not isinstance(entry, dict):
            raise InvalidParams(f"state override {address_text}: expected an object")
        if entry.get("state") is not None and entry.get("stateDiff") is not None:
            raise InvalidParams(f"account {address_text} has both 'state' and 'stateDiff'")

        def slots(raw: Any, what: str, owner: str = address_text) -> dict[int, int]:
            if not isinstance(raw, dict):
                raise InvalidParams(f"state override {owner}.{what}: expected an object")
            return {
                int.from_bytes(p.fixed_data(slot, f"{what} key", 32), "big"): int.from_bytes(
                    p.fixed_data(val, f"{what} value", 32), "big"
                )
                for slot, val in raw.items()
            }

        overrides[address] = AccountOverride(
            balance=None
            if entry.get("balance") is None
            else p.quantity(entry["balance"], "balance"),
            nonce=None
            if entry.get("nonce") is None
            else p.quantity(entry["nonce"], "nonce", 2**64 - 1),
            code=None if entry.get("code") is None else p.data(entry["code"], "code"),
            state=None if entry.get("state") is None else slots(entry["state"], "state"),
            state_diff={}
            if entry.get("stateDiff") is None
            else slots(entry["stateDiff"], "stateDiff"),
        )
    return overrides


class EthNamespace:
    def __init__(self, node: Node, privacy: PrivacyService, sender: TransactionSender) -> None:
        self.node = node
        self.privacy = privacy
        self.sender = sender
        self.chain_id_hex = hex(node.chain.chain_id)

    # --- chain facts -----------------------------------------------------------------

    @rpc_method("eth_chainId")
    async def chain_id(self, params: Any, context: CallContext) -> str:
        p.expect_params(params, 0, 0)
        return self.chain_id_hex

    @rpc_method("eth_blockNumber")
    async def block_number(self, params: Any, context: CallContext) -> str:
        p.expect_params(params, 0, 0)
        return fmt.hex_quantity(self.node.chain.head.block_number)

    @rpc_method("eth_syncing")
    async def syncing(self, params: Any, context: CallContext) -> bool:
        p.expect_params(params, 0, 0)
        return False

    @rpc_method("eth_coinbase")
    async def coinbase(self, params: Any, context: CallContext) -> str:
        p.expect_params(params, 0, 0)
        return fmt.checksum(self.node.coinbase)

    @rpc_method("eth_mining")
    async def mining(self, params: Any, context: CallContext) -> bool:
        p.expect_params(params, 0, 0)
        return self.node.engine is not None

    @rpc_method("eth_hashrate")
    async def hashrate(self, params: Any, context: CallContext) -> str:
        p.expect_params(params, 0, 0)
        return "0x0"

    @rpc_method("eth_accounts")
    async def accounts(self, params: Any, context: CallContext) -> list[str]:
        p.expect_params(params, 0, 0)
        return [fmt.checksum(address) for address in self.node.accounts.addresses()]

    @rpc_method("eth_gasPrice")
    async def gas_price(self, params: Any, context: CallContext) -> str:
        p.expect_params(params, 0, 0)
        return fmt.hex_quantity(SUGGESTED_TIP)

    @rpc_method("eth_maxPriorityFeePerGas")
    async def max_priority_fee(self, params: Any, context: CallContext) -> str:
        p.expect_params(params, 0, 0)
        return fmt.hex_quantity(SUGGESTED_TIP)

    @rpc_method("eth_blobBaseFee")
    async def blob_base_fee(self, params: Any, context: CallContext) -> str:
        p.expect_params(params, 0, 0)
        return "0x1"

    @rpc_method("eth_feeHistory")
    async def fee_history(self, params: Any, context: CallContext) -> dict[str, Any]:
        count_raw, newest_raw, percentiles_raw = p.expect_params(params, 2, 3)
        count = p.quantity(count_raw, "blockCount", 1024)
        newest = p.block_id(newest_raw, "newestBlock")
        percentiles: list[float] = []
        if percentiles_raw is not None:
            if not isinstance(percentiles_raw, list) or not all(
                isinstance(x, int | float) and not isinstance(x, bool) and 0 <= x <= 100
                for x in percentiles_raw
            ):
                raise InvalidParams("rewardPercentiles: expected numbers between 0 and 100")
            if any(b < a for a, b in zip(percentiles_raw, percentiles_raw[1:], strict=False)):
                raise InvalidParams("rewardPercentiles: must be ascending")
            percentiles = [float(x) for x in percentiles_raw]

        def read() -> dict[str, Any]:
            header = state_header(self.node.chain, newest)
            last = header.block_number
            first = max(0, last - count + 1)
            headers = [self.node.chain.header_by_number(n) for n in range(first, last + 1)]
            present = [h for h in headers if h is not None]
            return {
                "oldestBlock": fmt.hex_quantity(first),
                "baseFeePerGas": ["0x0"] * (len(present) + 1),
                "gasUsedRatio": [h.gas_used / h.gas_limit for h in present],
                "baseFeePerBlobGas": ["0x1"] * (len(present) + 1),
                "blobGasUsedRatio": [0.0] * len(present),
                "reward": [["0x0"] * len(percentiles) for _ in present] if percentiles else None,
            }

        history = await self.node.executor.run(read)
        if history["reward"] is None:
            del history["reward"]
        return history

    # --- state ---------------------------------------------------------------------

    async def _routed_read(self, block_raw: Any, address: Address, read: Any) -> Any:
        """Read state after a block from the state ``address`` lives in: a private
        contract's party group (where this node is a party), or the public state."""
        return await self.privacy.read_state(p.block_id(block_raw), address, read)

    @rpc_method("eth_getBalance")
    async def get_balance(self, params: Any, context: CallContext) -> str:
        address_raw, block_raw = p.expect_params(params, 1, 2)
        address = p.address(address_raw, "address")
        balance = await self._routed_read(
            block_raw, address, lambda state: state.get_balance(address)
        )
        return fmt.hex_quantity(balance)

    @rpc_method("eth_getTransactionCount")
    async def get_transaction_count(self, params: Any, context: CallContext) -> str:
        address_raw, block_raw = p.expect_params(params, 1, 2)
        address = p.address(address_raw, "address")
        block = p.block_id(block_raw)

        def read() -> int:
            return int(
                self.node.chain.state_at(state_header(self.node.chain, block)).get_nonce(address)
            )

        nonce = await self.node.executor.run(read)
        if block_raw == "pending":
            nonce = self.node.pool.pending_nonce(address, nonce)
        return fmt.hex_quantity(nonce)

    @rpc_method("eth_getCode")
    async def get_code(self, params: Any, context: CallContext) -> str:
        address_raw, block_raw = p.expect_params(params, 1, 2)
        address = p.address(address_raw, "address")
        code = await self._routed_read(block_raw, address, lambda state: state.get_code(address))
        return fmt.hex_data(code)

    @rpc_method("eth_getStorageAt")
    async def get_storage_at(self, params: Any, context: CallContext) -> str:
        address_raw, slot_raw, block_raw = p.expect_params(params, 2, 3)
        address = p.address(address_raw, "address")
        if isinstance(slot_raw, str) and len(slot_raw) == 66:
            slot = int.from_bytes(p.fixed_data(slot_raw, "slot", 32), "big")
        else:
            slot = p.quantity(slot_raw, "slot")
        value = await self._routed_read(
            block_raw, address, lambda state: state.get_storage(address, slot)
        )
        return fmt.hex_data(value.to_bytes(32, "big"))

    # --- calls ---------------------------------------------------------------------

    @rpc_method("eth_call")
    async def call(self, params: Any, context: CallContext) -> str:
        request_raw, block_raw, overrides_raw = p.expect_params(params, 1, 3)
        output = await self.privacy.call(
            p.call_request(request_raw), p.block_id(block_raw), parse_overrides(overrides_raw)
        )
        return fmt.hex_data(output)

    @rpc_method("eth_estimateGas")
    async def estimate_gas(self, params: Any, context: CallContext) -> str:
        request_raw, block_raw, overrides_raw = p.expect_params(params, 1, 3)
        gas = await self.privacy.estimate_gas(
            p.call_request(request_raw), p.block_id(block_raw), parse_overrides(overrides_raw)
        )
        return fmt.hex_quantity(gas)

    @rpc_method("eth_createAccessList")
    async def create_access_list(self, params: Any, context: CallContext) -> dict[str, Any]:
        request_raw, block_raw = p.expect_params(params, 1, 2)
        request = p.call_request(request_raw)
        block = p.block_id(block_raw)

        def run() -> tuple[list[tuple[Address, list[int]]], int, str | None]:
            return calls.access_list(
                self.node.chain, state_header(self.node.chain, block), request.as_call()
            )

        entries, gas_used, error = await self.node.executor.run(run)
        result: dict[str, Any] = {
            "accessList": [
                {
                    "address": fmt.checksum(address),
                    "storageKeys": [fmt.hex_data(slot.to_bytes(32, "big")) for slot in slots],
                }
                for address, slots in entries
            ],
            "gasUsed": fmt.hex_quantity(gas_used),
        }
        if error:
            result["error"] = error
        return result

    # --- sending -------------------------------------------------------------------

    @rpc_method("eth_sendTransaction")
    async def send_transaction(self, params: Any, context: CallContext) -> str:
        (request_raw,) = p.expect_params(params, 1, 1)
        transaction_hash = await self.privacy.send_transaction(p.call_request(request_raw))
        return fmt.hex_data(transaction_hash)

    @rpc_method("eth_signTransaction")
    async def sign_transaction(self, params: Any, context: CallContext) -> dict[str, Any]:
        (request_raw,) = p.expect_params(params, 1, 1)
        request = p.call_request(request_raw)
        transaction = await self.sender.sign(request)
        return {
            "raw": fmt.hex_data(transaction.encode()),
            "tx": fmt.format_transaction(transaction, request.sender or ZERO_ADDRESS, None),
        }

    @rpc_method("eth_sendRawTransaction")
    async def send_raw_transaction(self, params: Any, context: CallContext) -> str:
        (raw,) = p.expect_params(params, 1, 1)
        transaction = self.node.decode_raw_transaction(p.data(raw, "signed transaction"))
        return fmt.hex_data(await self.node.submit(transaction))

    @rpc_method("eth_sign")
    async def sign(self, params: Any, context: CallContext) -> str:
        address_raw, message_raw = p.expect_params(params, 2, 2)
        address = p.address(address_raw, "address")
        message = p.data(message_raw, "message")
        account = self.node.accounts.get(address)
        if account is None:
            raise ServerError("unknown account")
        signed = Account.sign_message(
            encode_defunct(primitive=message), account.private_key.to_bytes()
        )
        return fmt.hex_data(signed.signature)

    @rpc_method("eth_signTypedData_v4")
    async def sign_typed_data(self, params: Any, context: CallContext) -> str:
        address_raw, typed_raw = p.expect_params(params, 2, 2)
        address = p.address(address_raw, "address")
        if isinstance(typed_raw, str):
            try:
                typed_raw = json.loads(typed_raw)
            except ValueError:
                raise InvalidParams("typed data: not valid JSON") from None
        if not isinstance(typed_raw, dict):
            raise InvalidParams("typed data: expected an object")
        account = self.node.accounts.get(address)
        if account is None:
            raise ServerError("unknown account")
        check_typed_data_arrays(typed_raw)
        try:
            signed = Account.sign_typed_data(account.private_key.to_bytes(), full_message=typed_raw)
        except Exception as exc:  # eth-account raises several types for malformed input
            raise InvalidParams(f"typed data: {exc}") from None
        return fmt.hex_data(signed.signature)

    @rpc_method("eth_signTypedData")
    async def sign_typed_data_unversioned(self, params: Any, context: CallContext) -> str:
        """What web3.py's ``w3.eth.sign_typed_data`` sends; v4 semantics, as anvil's."""
        return await self.sign_typed_data(params, context)

    # --- transactions and receipts ----------------------------------------------------

    @rpc_method("eth_getTransactionByHash")
    async def get_transaction_by_hash(self, params: Any, context: CallContext) -> Any:
        (hash_raw,) = p.expect_params(params, 1, 1)
        transaction_hash = p.transaction_hash(hash_raw)
        record = await self.node.record(transaction_hash)
        if record is not None:
            transaction = self.node.decode_raw_transaction(record.encoded_transaction)
            return fmt.format_transaction(
                transaction, record.sender, (record.block_hash, record.block_number, record.index)
            )
        waiting = self.node.pool.lookup(transaction_hash)
        if waiting is not None:
            return fmt.format_transaction(waiting[0], waiting[1], None)
        return None

    @rpc_method("eth_getRawTransactionByHash")
    async def get_raw_transaction_by_hash(self, params: Any, context: CallContext) -> Any:
        (hash_raw,) = p.expect_params(params, 1, 1)
        transaction_hash = p.transaction_hash(hash_raw)
        record = await self.node.record(transaction_hash)
        if record is not None:
            return fmt.hex_data(record.encoded_transaction)
        waiting = self.node.pool.lookup(transaction_hash)
        return fmt.hex_data(waiting[0].encode()) if waiting is not None else None

    @rpc_method("eth_getTransactionReceipt")
    async def get_transaction_receipt(self, params: Any, context: CallContext) -> Any:
        (hash_raw,) = p.expect_params(params, 1, 1)
        transaction_hash = p.transaction_hash(hash_raw)
        record = await self.node.record(transaction_hash)
        return fmt.format_receipt(record) if record is not None else None

    async def _record_in_block(self, block: p.BlockId, index_raw: Any) -> TransactionRecord | None:
        """The record of the transaction at ``index`` of a block, or None."""
        index = p.quantity(index_raw, "index", 2**32)

        def read() -> TransactionRecord | None:
            header = resolve_header(self.node.chain, block)
            if header is None or (block.tag == "pending"):
                return None
            body = self.node.chain.block_of(header)
            if index >= len(body.transactions):
                return None
            return self.node.chain.record(body.transactions[index].hash)

        return await self.node.executor.run(read)

    async def _transaction_in_block(self, block: p.BlockId, index_raw: Any) -> Any:
        record = await self._record_in_block(block, index_raw)
        if record is None:
            return None
        transaction = self.node.decode_raw_transaction(record.encoded_transaction)
        return fmt.format_transaction(
            transaction, record.sender, (record.block_hash, record.block_number, record.index)
        )

    @rpc_method("eth_getTransactionByBlockHashAndIndex")
    async def transaction_by_block_hash_and_index(self, params: Any, context: CallContext) -> Any:
        hash_raw, index_raw = p.expect_params(params, 2, 2)
        return await self._transaction_in_block(p.BlockId(hash=p.block_hash(hash_raw)), index_raw)

    @rpc_method("eth_getTransactionByBlockNumberAndIndex")
    async def transaction_by_block_number_and_index(self, params: Any, context: CallContext) -> Any:
        block_raw, index_raw = p.expect_params(params, 2, 2)
        return await self._transaction_in_block(p.block_id(block_raw), index_raw)

    @rpc_method("eth_getRawTransactionByBlockHashAndIndex")
    async def raw_transaction_by_block_hash_and_index(
        self, params: Any, context: CallContext
    ) -> Any:
        hash_raw, index_raw = p.expect_params(params, 2, 2)
        record = await self._record_in_block(p.BlockId(hash=p.block_hash(hash_raw)), index_raw)
        return None if record is None else fmt.hex_data(record.encoded_transaction)

    @rpc_method("eth_getRawTransactionByBlockNumberAndIndex")
    async def raw_transaction_by_block_number_and_index(
        self, params: Any, context: CallContext
    ) -> Any:
        block_raw, index_raw = p.expect_params(params, 2, 2)
        record = await self._record_in_block(p.block_id(block_raw), index_raw)
        return None if record is None else fmt.hex_data(record.encoded_transaction)

    # --- blocks --------------------------------------------------------------------

    def _format_block(self, header: BlockHeaderAPI, full: bool) -> dict[str, Any]:
        """Chain thread."""
        body = self.node.chain.block_of(header)
        transactions: list[Any]
        if full:
            records = self.node.chain.records_of(body)
            transactions = [
                fmt.format_transaction(
                    transaction,
                    record.sender,
                    (record.block_hash, record.block_number, record.index),
                    0,
                )
                for transaction, record in zip(body.transactions, records, strict=True)
            ]
        else:
            transactions = [fmt.hex_data(transaction.hash) for transaction in body.transactions]
        return fmt.format_block(body, transactions)

    def _pending_block(self) -> dict[str, Any]:
        """A block that would follow the head: geth's "pending", number latest+1."""
        head = self.node.chain.head
        child = self.node.chain.chain.create_header_from_parent(head, timestamp=head.timestamp)
        formatted = fmt.format_header(child, size=0)
        formatted["hash"] = None
        formatted["nonce"] = None
        formatted["miner"] = fmt.checksum(self.node.coinbase)
        formatted["transactions"] = []
        formatted["uncles"] = []
        formatted["withdrawals"] = []
        return formatted

    async def _block(self, block: p.BlockId, full: bool) -> Any:
        def read() -> Any:
            if block.tag == "pending":
                return self._pending_block()
            header = resolve_header(self.node.chain, block)
            return None if header is None else self._format_block(header, full)

        return await self.node.executor.run(read)

    @rpc_method("eth_getBlockByNumber")
    async def get_block_by_number(self, params: Any, context: CallContext) -> Any:
        block_raw, full_raw = p.expect_params(params, 1, 2)
        block = p.block_id(block_raw)
        if block.hash is not None:
            raise InvalidParams("block number: expected a number or tag, got a hash")
        return await self._block(
            block, p.boolean(full_raw, "full") if full_raw is not None else False
        )

    @rpc_method("eth_getBlockByHash")
    async def get_block_by_hash(self, params: Any, context: CallContext) -> Any:
        hash_raw, full_raw = p.expect_params(params, 1, 2)
        block = p.BlockId(hash=p.block_hash(hash_raw))
        return await self._block(
            block, p.boolean(full_raw, "full") if full_raw is not None else False
        )

    async def _count(self, block: p.BlockId) -> Any:
        def read() -> Any:
            if block.tag == "pending":
                return 0
            header = resolve_header(self.node.chain, block)
            return None if header is None else len(self.node.chain.block_of(header).transactions)

        count = await self.node.executor.run(read)
        return None if count is None else fmt.hex_quantity(count)

    @rpc_method("eth_getBlockTransactionCountByHash")
    async def transaction_count_by_hash(self, params: Any, context: CallContext) -> Any:
        (hash_raw,) = p.expect_params(params, 1, 1)
        return await self._count(p.BlockId(hash=p.block_hash(hash_raw)))

    @rpc_method("eth_getBlockTransactionCountByNumber")
    async def transaction_count_by_number(self, params: Any, context: CallContext) -> Any:
        (block_raw,) = p.expect_params(params, 1, 1)
        return await self._count(p.block_id(block_raw))

    @rpc_method("eth_getUncleCountByBlockHash")
    async def uncle_count_by_hash(self, params: Any, context: CallContext) -> Any:
        (hash_raw,) = p.expect_params(params, 1, 1)
        block = p.BlockId(hash=p.block_hash(hash_raw))
        found = await self.node.executor.run(resolve_header, self.node.chain, block)
        return None if found is None else "0x0"

    @rpc_method("eth_getUncleCountByBlockNumber")
    async def uncle_count_by_number(self, params: Any, context: CallContext) -> Any:
        (block_raw,) = p.expect_params(params, 1, 1)
        found = await self.node.executor.run(resolve_header, self.node.chain, p.block_id(block_raw))
        return None if found is None else "0x0"

    @rpc_method("eth_getUncleByBlockHashAndIndex")
    async def uncle_by_hash(self, params: Any, context: CallContext) -> Any:
        hash_raw, index_raw = p.expect_params(params, 2, 2)
        p.block_hash(hash_raw)
        p.quantity(index_raw, "index")
        return None

    @rpc_method("eth_getUncleByBlockNumberAndIndex")
    async def uncle_by_number(self, params: Any, context: CallContext) -> Any:
        block_raw, index_raw = p.expect_params(params, 2, 2)
        p.block_id(block_raw)
        p.quantity(index_raw, "index")
        return None

    @rpc_method("eth_getBlockReceipts")
    async def get_block_receipts(self, params: Any, context: CallContext) -> Any:
        (block_raw,) = p.expect_params(params, 1, 1)
        block = p.block_id(block_raw)

        def read() -> Any:
            header = resolve_header(self.node.chain, block)
            if header is None or block.tag == "pending":
                return None
            return [
                fmt.format_receipt(r)
                for r in self.node.chain.records_of(self.node.chain.block_of(header))
            ]

        return await self.node.executor.run(read)

    @rpc_method("eth_getProof")
    async def get_proof(self, params: Any, context: CallContext) -> Any:
        raise ServerError("eth_getProof is not supported by quorum-py")

    @rpc_method("eth_protocolVersion")
    async def protocol_version(self, params: Any, context: CallContext) -> str:
        p.expect_params(params, 0, 0)
        return "0x44"
