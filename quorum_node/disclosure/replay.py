"""Replaying a disclosed party-group history on a fresh private state, the way every
member's node executed it, reading the public state it needs from any node's ordinary
JSON-RPC.

The execution is the node's own (``privacy.state.run_private_message`` on a
``RoutedAccountDB``): private accounts live in the fresh state, public ones are read
(never written) as they were after the transaction's block, in that block's context
(number, timestamp, coinbase, gas limit, prev-randao, base fee). What the replay cannot
see: ``BLOCKHASH`` of earlier blocks (it answers zero), which no disclosed contract
should depend on.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from eth.abc import AccountDatabaseAPI
from eth.constants import BLANK_ROOT_HASH
from eth.db.atomic import AtomicDB
from eth.vm.chain_context import ChainContext
from eth.vm.forks.prague.blocks import PragueBlockHeader
from eth_hash.auto import keccak
from eth_typing import Address, BlockNumber, Hash32

from quorum_node.chain.transactions import QuorumTransactionBuilder
from quorum_node.chain.vm import QuorumVM
from quorum_node.privacy.flags import flag_refusal
from quorum_node.privacy.processor import created_contracts
from quorum_node.privacy.state import (
    private_state_in,
    record_history,
    run_private_message,
)
from quorum_node.privacy.store import PrivateContract

EMPTY_CODE_HASH = keccak(b"")


class RpcFailure(Exception):
    """The node did not answer a JSON-RPC call (or answered it with an error)."""


class JsonRpc:
    """Blocking JSON-RPC calls to one node, with the answers about past blocks cached."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url
        self.timeout = timeout
        self._cache: dict[str, Any] = {}

    def call(self, method: str, *params: Any) -> Any:
        key = json.dumps([method, params])
        if key in self._cache:
            return self._cache[key]
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
        # S310: the URL is the operator's own --rpc argument, not something a peer sent.
        request = urllib.request.Request(  # noqa: S310
            self.url, data=body.encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                reply = json.loads(response.read())
        except (OSError, urllib.error.URLError, ValueError) as exc:
            raise RpcFailure(f"{self.url} did not answer {method}: {exc}") from None
        if "error" in reply:
            raise RpcFailure(f"{method}: {reply['error'].get('message', reply['error'])}")
        self._cache[key] = reply.get("result")
        return reply.get("result")


class RemotePublicAccounts:
    """The public accounts after one block, as a node's JSON-RPC shows them; read-only
    (``RoutedAccountDB`` refuses every write to a public account before it gets here).

    A party's node answers ``eth_getCode`` and ``eth_getStorageAt`` of a private contract
    from the contract's group state; such an account is no public account, so it reads
    as absent here (``eth_getContractPrivacyMetadata`` tells them apart; a node without
    the quorum namespace holds no private state to mix in)."""

    def __init__(self, rpc: JsonRpc, block_number: int) -> None:
        self._rpc = rpc
        self._block = hex(block_number)

    def _address(self, address: Address) -> str:
        return "0x" + bytes(address).hex()

    def _is_private(self, address: Address) -> bool:
        try:
            return (
                self._rpc.call("eth_getContractPrivacyMetadata", self._address(address)) is not None
            )
        except RpcFailure:
            return False

    def get_balance(self, address: Address) -> int:
        return int(self._rpc.call("eth_getBalance", self._address(address), self._block), 16)

    def get_nonce(self, address: Address) -> int:
        return int(
            self._rpc.call("eth_getTransactionCount", self._address(address), self._block), 16
        )

    def get_code(self, address: Address) -> bytes:
        if self._is_private(address):
            return b""
        code = self._rpc.call("eth_getCode", self._address(address), self._block)
        return bytes.fromhex(code[2:])

    def get_code_hash(self, address: Address) -> Hash32:
        return Hash32(keccak(self.get_code(address)))

    def get_storage(self, address: Address, slot: int, from_journal: bool = True) -> int:
        if self._is_private(address):
            return 0
        value = self._rpc.call("eth_getStorageAt", self._address(address), hex(slot), self._block)
        return int(value, 16)

    def account_has_code_or_nonce(self, address: Address) -> bool:
        return self.get_nonce(address) > 0 or bool(self.get_code(address))

    def account_is_empty(self, address: Address) -> bool:
        return not self.account_has_code_or_nonce(address) and self.get_balance(address) == 0

    def account_exists(self, address: Address) -> bool:
        # JSON-RPC cannot tell an empty account from a missing one; after EIP-161 the
        # EVM treats them alike.
        return not self.account_is_empty(address)


def header_from_json(block: dict[str, Any]) -> PragueBlockHeader:
    """The block header a node's ``eth_getBlockByNumber`` describes (checked by hash)."""

    def number(key: str) -> int:
        return int(block[key], 16)

    def data(key: str) -> Any:  # bytes; py-evm's stubs want its Hash32/Address aliases
        return bytes.fromhex(block[key][2:])

    return PragueBlockHeader(
        difficulty=number("difficulty"),
        block_number=BlockNumber(number("number")),
        gas_limit=number("gasLimit"),
        timestamp=number("timestamp"),
        coinbase=data("miner"),
        parent_hash=data("parentHash"),
        uncles_hash=data("sha3Uncles"),
        state_root=data("stateRoot"),
        transaction_root=data("transactionsRoot"),
        receipt_root=data("receiptsRoot"),
        bloom=int.from_bytes(data("logsBloom"), "big"),
        gas_used=number("gasUsed"),
        extra_data=data("extraData"),
        mix_hash=data("mixHash"),
        nonce=data("nonce"),
        base_fee_per_gas=number("baseFeePerGas"),
        withdrawals_root=data("withdrawalsRoot"),
        blob_gas_used=number("blobGasUsed"),
        excess_blob_gas=number("excessBlobGas"),
        parent_beacon_block_root=data("parentBeaconBlockRoot"),
        requests_hash=data("requestsHash"),
    )


@dataclass(frozen=True)
class ReplayStep:
    """One disclosed private transaction to run: its public side and its payload."""

    block_number: int
    sender: Address
    to: Address | None
    nonce: int
    gas: int
    payload: bytes
    transaction_hash: bytes
    payload_hash: bytes
    group_id: bytes
    privacy_flag: int
    mandatory_for: tuple[str, ...]  # base64 keys, as the envelope's terms fix them


def replay(
    rpc: JsonRpc, chain_id: int, steps: Sequence[ReplayStep]
) -> list[tuple[int, bytes, list[int]]]:
    """Run ``steps`` (in chain order) on a fresh private state; for each block, the
    group root after it and each transaction's status."""
    db = AtomicDB()
    root = Hash32(BLANK_ROOT_HASH)
    contracts: dict[bytes, PrivateContract] = {}  # what the replay created, as nodes record
    results: list[tuple[int, bytes, list[int]]] = []
    index = 0
    while index < len(steps):
        block_number = steps[index].block_number
        header = header_from_json(rpc.call("eth_getBlockByNumber", hex(block_number), False))
        context = QuorumVM.create_execution_context(header, (), ChainContext(chain_id))
        public = cast(AccountDatabaseAPI, RemotePublicAccounts(rpc, block_number))
        state = private_state_in(QuorumVM.get_state_class(), context, db, root, public)
        statuses = []
        while index < len(steps) and steps[index].block_number == block_number:
            step = steps[index]
            outcome = run_private_message(
                state,
                sender=step.sender,
                to=step.to,
                nonce=step.nonce,
                gas=step.gas,
                payload=step.payload,
                unsigned_builder=QuorumTransactionBuilder,
                refuse=flag_refusal(
                    lambda address: contracts.get(bytes(address)),
                    step.group_id,
                    step.privacy_flag,
                    step.mandatory_for,
                ),
            )
            if outcome.computation is not None and outcome.status == 1:
                created = PrivateContract(
                    step.group_id,
                    Hash32(step.transaction_hash),
                    step.privacy_flag,
                    tuple(sorted(step.mandatory_for)),
                )
                for address in created_contracts(outcome.computation):
                    contracts[bytes(address)] = created
            record_history(state, step.transaction_hash, step.payload_hash)
            statuses.append(outcome.status)
            index += 1
        state.persist()
        root = Hash32(state.state_root)
        results.append((block_number, bytes(root), statuses))
    return results
