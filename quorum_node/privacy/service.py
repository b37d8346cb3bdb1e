"""The use cases of private transactions, in one place (docs/architecture.md, "A private
transaction, step by step").

``PrivacyService`` is the only code that parses the privacy parameters of a request,
checks the target contract's party group, reserves the sender's nonce for a private
transaction, hands the payload to this node's manager, builds, signs and submits the
transaction carrying its hash, and runs calls and gas estimates on a group's private
state. The JSON-RPC modules (``rpc.eth``, ``rpc.quorum``) only translate JSON to these
calls and back. A send, top to bottom (``send_transaction``):

1. ``parse_privacy``: no ``privateFor`` → a public send (``sending.TransactionSender``).
2. ``NonceReservations.reserve``: the account's lock and nonce, before anything leaves.
3. On the chain thread: ``check_contract_group``, ``check_contract_flags`` and, without
   ``gas``, an estimate on the group's private state (``calls.PrivateCalls``).
4. ``_distribute``: the manager encrypts, pushes to every party and answers the hash.
5. ``unsigned_private_transaction`` + ``sign_private``: data = the hash, v = 37/38.
6. ``Node.submit``: admission and the pool; the engine orders it. If this fails, the
   payload is deleted from this node's manager again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from eth.abc import BlockHeaderAPI, StateAPI
from eth.constants import BLANK_ROOT_HASH, CREATE_CONTRACT_ADDRESS
from eth.db.account import AccountDB
from eth.vm.state import BaseState
from eth_typing import Address, Hash32
from eth_utils import to_checksum_address

from quorum_node.block_id import BlockId, state_header
from quorum_node.chain import calls
from quorum_node.chain.calls import AccountOverride, CallRunner
from quorum_node.chain.transactions import (
    PRIVATE_MIN_GAS,
    check_private_shape,
    private_gas_limit,
    sign_private,
    unsigned_private_transaction,
)
from quorum_node.node import Node
from quorum_node.privacy.calls import PrivateCalls
from quorum_node.privacy.flags import STATE_VALIDATION_EXEC_HASH, flag_violation
from quorum_node.privacy.group_change import GROUP_CHANGE_ADDRESS
from quorum_node.privacy.params import (
    STANDARD_PRIVATE,
    STATE_VALIDATION,
    PrivacyError,
    PrivacyParams,
    parse_privacy,
    parties_text,
)
from quorum_node.privacy.store import PrivateContract, PrivateStore
from quorum_node.sending import TransactionSender
from quorum_node.transaction_request import TransactionRequest
from tx_manager.client import ClientError, Q2TClient

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class GroupAccount:
    """One account of a party group's private state, as ``quorum_groupContracts`` lists it."""

    address: Address
    nonce: int
    balance: int
    code_hash: bytes
    storage_root: bytes


class PrivacyService:
    def __init__(
        self,
        node: Node,
        sender: TransactionSender,
        store: PrivateStore,
        manager: Q2TClient | None,
    ) -> None:
        self._node = node
        self._sender = sender
        self._store = store
        self._manager = manager
        self._default_key: str | None = None

    # --- the manager ----------------------------------------------------------------

    def _require_manager(self) -> Q2TClient:
        if self._manager is None:
            raise PrivacyError("this node has no transaction manager: private transactions are off")
        return self._manager

    async def default_key(self) -> str:
        """The manager's first key: privateFrom when a request leaves it out."""
        if self._default_key is None:
            try:
                keys_held = await self._require_manager().keys()
            except ClientError as exc:
                raise PrivacyError(f"transaction manager unavailable: {exc}") from None
            if not keys_held:
                raise PrivacyError("the transaction manager holds no key")
            self._default_key = keys_held[0]
        return self._default_key

    async def _distribute(self, payload: bytes, privacy: PrivacyParams) -> bytes:
        """Encrypt, store and push ``payload`` to the parties; the 64-byte hash."""
        try:
            result = await self._require_manager().send(
                payload,
                privacy.private_from,
                list(privacy.private_for),
                privacy.privacy_flag,
                exec_hash=exec_hash_for(privacy),
                mandatory_recipients=list(privacy.mandatory_for),
            )
        except ClientError as exc:
            raise PrivacyError(f"transaction manager refused the private payload: {exc}") from None
        return bytes(result.key)

    async def _forget(self, payload_hash: bytes) -> None:
        """Delete a payload whose transaction never entered the pool (best effort: the
        recipients keep their copies, which no transaction will ever name)."""
        try:
            await self._require_manager().delete(payload_hash)
        except (ClientError, PrivacyError) as exc:
            logger.warning("could not delete unsent payload %s…: %s", payload_hash[:8].hex(), exc)

    async def payload(self, payload_hash: bytes) -> bytes | None:
        """``eth_getQuorumPayload``: the plaintext on a party's node, None elsewhere."""
        try:
            received = await self._require_manager().receive(payload_hash)
        except ClientError as exc:
            raise PrivacyError(f"transaction manager unavailable: {exc}") from None
        return None if received is None else bytes(received.payload)

    # --- sending --------------------------------------------------------------------

    async def send_transaction(self, request: TransactionRequest) -> Hash32:
        """``eth_sendTransaction``: private when ``privateFor`` is present, else public."""
        privacy = parse_privacy(request.extra)
        if privacy is None:
            return await self._sender.send(request)
        account = self._sender.account(request.sender)
        if request.value:
            raise PrivacyError("ether value is not supported for private transactions")
        default_key = await self.default_key()
        privacy.check_mandatory_among_parties(default_key)
        group_id = privacy.group_id(default_key)
        node = self._node
        async with self._sender.nonces.reserve(account.address, request.nonce) as nonce:

            def check_and_estimate() -> int:
                if request.to != GROUP_CHANGE_ADDRESS:  # control messages name any parties
                    self.check_group_open(group_id)
                self.check_contract_group(request.to, privacy, default_key)
                self.check_contract_flags(request.to, privacy)
                if request.gas is not None:
                    return max(request.gas, PRIVATE_MIN_GAS)
                runner = self._runner(node.chain.head, group_id)
                return private_gas_limit(calls.estimate_gas(runner, request.as_call()))

            gas = await node.executor.run(check_and_estimate)
            payload_hash = await self._distribute(request.data, privacy)
            try:
                unsigned = unsigned_private_transaction(
                    nonce=nonce,
                    gas=gas,
                    gas_price=request.gas_price or 0,
                    to=request.to,
                    payload_hash=payload_hash,
                )
                return await node.submit(sign_private(unsigned, account.private_key))
            except BaseException:
                # Cancelled too (a WebSocket client that went away): no transaction will
                # name this payload, so it must not stay. Shielded: deleting finishes even
                # if the send is cancelled again meanwhile.
                await asyncio.shield(self._forget(payload_hash))
                raise

    async def send_group_change_message(
        self, sender: Address | None, private_from: str, parties: list[str], data: bytes
    ) -> Hash32:
        """A control message of a group change (``privacy.group_change``) to exactly
        ``parties``, from ``sender``'s account. Its gas is the minimum: nothing runs it in
        the EVM."""
        request = TransactionRequest(
            sender=sender,
            to=GROUP_CHANGE_ADDRESS,
            gas=PRIVATE_MIN_GAS,
            data=data,
            extra={
                "privateFrom": private_from,
                "privateFor": [key for key in parties if key != private_from],
            },
        )
        return await self.send_transaction(request)

    async def send_raw_private_transaction(self, raw: bytes, options: Any) -> Hash32:
        """``eth_sendRawPrivateTransaction``: a transaction signed offline over a
        ``/storeraw`` hash; the manager re-wraps its key for the parties, then it is
        submitted. (Its nonce was chosen by the signer, so nothing is reserved; the raw
        payload stays with the manager so that the same signed transaction can be sent
        again.)"""
        node = self._node
        transaction = node.decode_raw_transaction(raw)
        await node.until_current()  # before the payload goes to any recipient
        privacy = parse_privacy(options) if isinstance(options, dict) else None
        if privacy is None:
            raise PrivacyError("transaction is not private")
        check_private_shape(transaction)
        default_key = await self.default_key()
        privacy.check_mandatory_among_parties(default_key)
        to = None if transaction.to == CREATE_CONTRACT_ADDRESS else bytes(transaction.to)

        def check() -> None:
            if to != GROUP_CHANGE_ADDRESS:
                self.check_group_open(privacy.group_id(default_key))
            self.check_contract_group(to, privacy, default_key)
            self.check_contract_flags(to, privacy)

        await node.executor.run(check)
        try:
            await self._require_manager().send_signed_tx(
                bytes(transaction.data),
                list(privacy.private_for),
                privacy.privacy_flag,
                exec_hash=exec_hash_for(privacy),
                mandatory_recipients=list(privacy.mandatory_for),
            )
        except ClientError as exc:
            raise PrivacyError(f"transaction manager refused to distribute: {exc}") from None
        return await node.submit(transaction)

    # --- party groups ---------------------------------------------------------------

    def group_of(self, address: bytes | None) -> bytes | None:
        """The party group a private contract lives in, if this node knows it."""
        if address is None:
            return None
        contract = self._store.contract(Address(address))
        return contract.group_id if contract is not None else None

    def check_group_open(self, group_id: bytes) -> None:
        """Refuse a transaction to a party group that a group change moved on (it would
        be refused on every party when it executes), or to one this node joined and holds
        no state of yet. Chain thread."""
        change_id = self._store.frozen_by(group_id)
        change = self._store.change(change_id) if change_id is not None else None
        if change is not None:
            raise PrivacyError(
                f"party group 0x{group_id.hex()} became party group "
                f"0x{change.new_group_id.hex()} ({parties_text(change.new_members)}) at block "
                f"{change.final_block} (group change 0x{change.change_id.hex()}): send to "
                "those parties instead"
            )
        waiting = self._store.pending_groups().get(group_id)
        if waiting is not None:
            raise PrivacyError(
                f"this node joined party group 0x{group_id.hex()} (group change "
                f"0x{waiting.hex()}) and has not accepted its handed-over state yet"
            )

    def check_contract_group(
        self, to: bytes | None, privacy: PrivacyParams, default_key: str
    ) -> None:
        """Refuse a private transaction to a private contract of another party group; it
        would run in its own group's state, where that contract does not exist, and
        silently do nothing (docs/architecture.md, "Private state per party group").
        Chain thread."""
        contract_group = self.group_of(to)
        if contract_group is None or contract_group == privacy.group_id(default_key):
            return
        members = self._store.group_members(contract_group)
        raise PrivacyError(
            f"contract {to_checksum_address(to or b'')} lives in party group "
            f"0x{contract_group.hex()} ({parties_text(members)}); this transaction's "
            f"parties are {parties_text(privacy.parties(default_key))}: a private "
            "transaction can only touch contracts of its own group"
        )

    def check_contract_flags(self, to: bytes | None, privacy: PrivacyParams) -> None:
        """GoQuorum's submission checks of privacy flags (``privacy.flags``): a flag other
        than 0 needs a private contract of the group to send to ("contract not found.
        cannot transact"), and the target's flag and mandatory recipients must be met.
        Contracts the target calls are checked when the transaction executes, on every
        party alike. Chain thread, after ``check_contract_group``."""
        if to is None:
            return
        contract = self._store.contract(Address(to))
        if contract is None:
            if privacy.privacy_flag != STANDARD_PRIVATE:
                raise PrivacyError("contract not found. cannot transact")
            return
        reason = flag_violation(to, contract, privacy.privacy_flag, privacy.mandatory_for)
        if reason is not None:
            raise PrivacyError(reason)

    # --- calls and state reads ------------------------------------------------------

    def _private_calls(self, header: BlockHeaderAPI, group_id: bytes) -> PrivateCalls:
        chain = self._node.chain
        return PrivateCalls(chain, chain.db, header, self._group_root(header, group_id))

    def _group_root(self, header: BlockHeaderAPI, group_id: bytes) -> Hash32:
        """The group's root after ``header``; up to a group change's activation block H,
        the root of the group it came from (its contracts' state before the change)."""
        roots = self._store.roots_after(header.hash)
        root = roots.get(group_id)
        if root is None:
            predecessor = self._store.predecessor(group_id)
            if predecessor is not None and header.block_number <= predecessor[1]:
                root = roots.get(predecessor[0])
        return root if root is not None else Hash32(BLANK_ROOT_HASH)

    def _runner(self, header: BlockHeaderAPI, group_id: bytes | None) -> CallRunner:
        if group_id is None:
            return calls.PublicCalls(self._node.chain, header)
        return self._private_calls(header, group_id)

    async def _run_call(
        self,
        request: TransactionRequest,
        block: BlockId,
        run: Callable[[CallRunner, calls.Call, Mapping[Address, AccountOverride]], T],
        overrides: Mapping[Address, AccountOverride],
    ) -> T:
        """Run on the state ``request`` belongs to: its ``privateFor`` group, the group of
        the private contract it calls, or the public state."""
        privacy = parse_privacy(request.extra)
        group_id = privacy.group_id(await self.default_key()) if privacy is not None else None

        def in_state() -> T:
            header = state_header(self._node.chain, block)
            runner = self._runner(header, group_id or self.group_of(request.to))
            return run(runner, request.as_call(), overrides)

        return await self._node.executor.run(in_state)

    async def call(
        self,
        request: TransactionRequest,
        block: BlockId,
        overrides: Mapping[Address, AccountOverride],
    ) -> bytes:
        """``eth_call``, on the right state (see ``_run_call``)."""
        return await self._run_call(request, block, calls.call, overrides)

    async def estimate_gas(
        self,
        request: TransactionRequest,
        block: BlockId,
        overrides: Mapping[Address, AccountOverride],
    ) -> int:
        """``eth_estimateGas``, on the right state (see ``_run_call``)."""
        return await self._run_call(request, block, calls.estimate_gas, overrides)

    def state_for(self, header: BlockHeaderAPI, address: bytes) -> StateAPI:
        """The state ``address`` lives in after ``header``: its group's private state
        (where this node is a party), or the public one. Chain thread."""
        group_id = self.group_of(address)
        if group_id is None:
            return self._node.chain.state_at(header)
        return self._private_calls(header, group_id).state()

    async def read_state(self, block: BlockId, address: bytes, read: Callable[[StateAPI], T]) -> T:
        """``read`` applied to the state ``address`` lives in, after ``block``."""

        def run() -> T:
            return read(self.state_for(state_header(self._node.chain, block), address))

        return await self._node.executor.run(run)

    async def storage_root(self, address: Address, block: BlockId) -> bytes:
        """``eth_storageRoot``: from the contract's group state if it is private."""

        def read(state: StateAPI) -> bytes:
            account_db = cast(AccountDB, cast(BaseState, state)._account_db)  # noqa: SLF001
            return bytes(account_db._get_storage_root(address))  # noqa: SLF001

        return await self.read_state(block, address, read)

    async def contract(self, address: Address) -> PrivateContract | None:
        """``eth_getContractPrivacyMetadata``: where a private contract lives."""
        return await self._node.executor.run(self._store.contract, address)

    async def private_roots(self, block: BlockId) -> dict[bytes, bytes]:
        """Every party group root this node holds after ``block``."""

        def read() -> dict[bytes, bytes]:
            header = state_header(self._node.chain, block)
            return dict(self._store.roots_after(header.hash))

        return await self._node.executor.run(read)

    async def group_contracts(self, group_id: bytes, block: BlockId) -> list[GroupAccount]:
        """``quorum_groupContracts``: each account of a party group's private state after
        ``block``, so that two members can find which contract their roots differ in."""

        def read() -> list[GroupAccount]:
            header = state_header(self._node.chain, block)
            root = self._store.roots_after(header.hash).get(group_id)
            if root is None:
                raise PrivacyError(
                    f"this node holds no private state of group 0x{group_id.hex()} "
                    f"at block {header.block_number}"
                )
            accounts = AccountDB(self._node.chain.db, root)
            return [
                GroupAccount(
                    address=address,
                    nonce=int(accounts.get_nonce(address)),
                    balance=int(accounts.get_balance(address)),
                    code_hash=bytes(accounts.get_code_hash(address)),
                    storage_root=bytes(accounts._get_storage_root(address)),  # noqa: SLF001
                )
                for address in self._store.group_contracts(group_id)
                if accounts.account_exists(address)
            ]

        return await self._node.executor.run(read)


def exec_hash_for(privacy: PrivacyParams) -> bytes:
    """The execHash a send carries: the fixed tag for flag 3 (``privacy.flags``), else none."""
    return STATE_VALIDATION_EXEC_HASH if privacy.privacy_flag == STATE_VALIDATION else b""
