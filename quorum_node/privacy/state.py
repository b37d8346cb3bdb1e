"""A party group's private state, and running one private transaction on it.

The private state is a py-evm state over the group's own state root. Its account
database routes by account: an account that exists in the private state is read and
written there; any other account is read from the public state, and writing to it
(storage, balance, nonce, code) fails the way an EVM error fails, reverting the private
transaction's frame. That is GoQuorum's rule: private contracts may read public ones,
never change them or move value into them. Accounts that exist nowhere yet (a contract a
private transaction creates) are born private.

Execution is deterministic and uses nothing outside the group's state, the public state
after the block, and the block's context, so every party reaches the same root.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from eth._utils.address import generate_contract_address
from eth.abc import (
    AccountDatabaseAPI,
    AtomicDatabaseAPI,
    ComputationAPI,
    ExecutionContextAPI,
    SignedTransactionAPI,
    StateAPI,
    VirtualMachineAPI,
)
from eth.constants import CREATE_CONTRACT_ADDRESS
from eth.db.account import AccountDB
from eth.exceptions import VMError
from eth.vm.forks.frontier.state import FrontierTransactionExecutor
from eth.vm.message import Message
from eth.vm.spoof import SpoofTransaction
from eth.vm.state import BaseState
from eth_hash.auto import keccak
from eth_typing import Address, Hash32


class PublicStateWriteError(VMError):  # type: ignore[misc]
    """A private transaction tried to change a public account."""


class RoutedAccountDB(AccountDB):  # type: ignore[misc]
    """Private accounts here, public accounts read-only from ``public``."""

    def __init__(
        self, db: AtomicDatabaseAPI, state_root: Hash32, public: AccountDatabaseAPI
    ) -> None:
        super().__init__(db, state_root)
        self._public = public

    def _private(self, address: Address) -> bool:
        return bool(super().account_exists(address))

    def _public_account(self, address: Address) -> bool:
        return not self._private(address) and bool(self._public.account_exists(address))

    def _check_writable(self, address: Address) -> None:
        if self._public_account(address):
            raise PublicStateWriteError(
                f"a private transaction cannot change public account 0x{address.hex()}"
            )

    # reads: private if the account is private, else public
    def get_storage(self, address: Address, slot: int, from_journal: bool = True) -> int:
        if self._private(address):
            return int(super().get_storage(address, slot, from_journal))
        return int(self._public.get_storage(address, slot, from_journal))

    def get_balance(self, address: Address) -> int:
        return int(
            super().get_balance(address)
            if self._private(address)
            else self._public.get_balance(address)
        )

    def get_nonce(self, address: Address) -> int:
        return int(
            super().get_nonce(address)
            if self._private(address)
            else self._public.get_nonce(address)
        )

    def get_code(self, address: Address) -> bytes:
        return bytes(
            super().get_code(address) if self._private(address) else self._public.get_code(address)
        )

    def get_code_hash(self, address: Address) -> Hash32:
        if self._private(address):
            return Hash32(super().get_code_hash(address))
        return Hash32(self._public.get_code_hash(address))

    def account_has_code_or_nonce(self, address: Address) -> bool:
        if self._private(address):
            return bool(super().account_has_code_or_nonce(address))
        return bool(self._public.account_has_code_or_nonce(address))

    def account_exists(self, address: Address) -> bool:
        return self._private(address) or bool(self._public.account_exists(address))

    def account_is_empty(self, address: Address) -> bool:
        if self._private(address):
            return bool(super().account_is_empty(address))
        return bool(self._public.account_is_empty(address))

    # writes: refused for public accounts
    def set_storage(self, address: Address, slot: int, value: int) -> None:
        self._check_writable(address)
        super().set_storage(address, slot, value)

    def delete_storage(self, address: Address) -> None:
        self._check_writable(address)
        super().delete_storage(address)

    def set_balance(self, address: Address, balance: int) -> None:
        self._check_writable(address)
        super().set_balance(address, balance)

    def set_nonce(self, address: Address, nonce: int) -> None:
        self._check_writable(address)
        super().set_nonce(address, nonce)

    def increment_nonce(self, address: Address) -> None:
        self._check_writable(address)
        super().increment_nonce(address)

    def set_code(self, address: Address, code: bytes) -> None:
        self._check_writable(address)
        super().set_code(address, code)

    def delete_code(self, address: Address) -> None:
        self._check_writable(address)
        super().delete_code(address)

    def delete_account(self, address: Address) -> None:
        self._check_writable(address)
        super().delete_account(address)

    def touch_account(self, address: Address) -> None:
        # Touching marks an account for EIP-161 cleanup; a public account is not ours to
        # touch, and calling it read-only must not count as a write.
        if not self._public_account(address):
            super().touch_account(address)


def private_state(
    public_vm: VirtualMachineAPI, db: AtomicDatabaseAPI, private_root: Hash32
) -> StateAPI:
    """A state over ``private_root`` in ``public_vm``'s block context, reading public
    accounts from ``public_vm.state``."""
    public_accounts = cast(BaseState, public_vm.state)._account_db  # noqa: SLF001 - py-evm's seam
    return private_state_in(
        public_vm.get_state_class(),
        public_vm.state.execution_context,
        db,
        private_root,
        public_accounts,
    )


def private_state_in(
    state_class: type[StateAPI],
    execution_context: ExecutionContextAPI,
    db: AtomicDatabaseAPI,
    private_root: Hash32,
    public_accounts: AccountDatabaseAPI,
) -> StateAPI:
    """A state over ``private_root`` in a block's ``execution_context``, reading public
    accounts from ``public_accounts``: the node's own public state, or (a verifier
    replaying a disclosed history) another node's, read over JSON-RPC."""
    state = cast(BaseState, state_class(db, execution_context, private_root))
    state._account_db = RoutedAccountDB(db, private_root, public_accounts)  # noqa: SLF001
    return state


@dataclass(frozen=True)
class PrivateOutcome:
    computation: ComputationAPI | None
    contract_address: Address | None
    gas_used: int
    status: int
    refusal: str | None = None  # why ``refuse`` undid a successful execution


#: Judges a successful computation before its changes stand: a reason to undo them, or
#: None (``privacy.processor`` checks the privacy flags of every contract it touched).
Refuse = Callable[[ComputationAPI], str | None]


def run_private_transaction(
    state: StateAPI,
    transaction: SignedTransactionAPI,
    sender: Address,
    payload: bytes,
    unsigned_builder: type,
    refuse: Refuse | None = None,
) -> PrivateOutcome:
    """Execute the decrypted ``payload`` of a private ``transaction`` on ``state``."""
    return run_private_message(
        state,
        sender=sender,
        to=None if transaction.to == CREATE_CONTRACT_ADDRESS else Address(transaction.to),
        nonce=transaction.nonce,
        gas=transaction.gas,
        payload=payload,
        unsigned_builder=unsigned_builder,
        refuse=refuse,
    )


def run_private_message(
    state: StateAPI,
    *,
    sender: Address,
    to: Address | None,
    nonce: int,
    gas: int,
    payload: bytes,
    unsigned_builder: type,
    refuse: Refuse | None = None,
) -> PrivateOutcome:
    """Run ``payload`` from ``sender`` as a private transaction would run it.

    The message is what the public transaction would have been with the payload as its
    data; a creation's address comes from the sender and the public nonce, as in
    GoQuorum. ``gas`` covers the payload's intrinsic gas and the execution. Nothing is
    charged and the sender's public account is not touched (its nonce moves on the
    public side only). eth_call and eth_estimateGas on private state use this too.

    ``refuse``, when given, sees a successful computation before its changes stand; if
    it names a reason, every change is undone and the outcome is a failure (status 0,
    the gas used so far) carrying that reason: the same on every party, since it
    depends only on the group state and the transaction.
    """
    contract_address = Address(generate_contract_address(sender, nonce)) if to is None else None
    target = CREATE_CONTRACT_ADDRESS if to is None else to
    as_public = unsigned_builder.create_unsigned_transaction(  # type: ignore[attr-defined]
        nonce=nonce,
        gas_price=0,
        gas=gas,
        to=target,
        value=0,
        data=payload,
    )
    spoofed = SpoofTransaction(as_public, sender=sender, from_=sender)
    intrinsic = as_public.intrinsic_gas
    if gas < intrinsic:
        return PrivateOutcome(None, contract_address, gas, 0)
    message = Message(
        gas=gas - intrinsic,
        to=target,
        sender=sender,
        value=0,
        data=b"" if to is None else payload,
        code=payload if to is None else state.get_code(to),
        # None for a call is Message's own default; its annotation lacks the Optional.
        create_address=contract_address,  # type: ignore[arg-type]
    )
    # Every fork's executor, Quorum's included, derives from Frontier's, which holds
    # calculate_gas_refund; TransactionExecutorAPI does not declare it.
    executor = cast(FrontierTransactionExecutor, state.get_transaction_executor())
    state.lock_changes()
    before = state.snapshot()
    try:
        # SpoofTransaction stands in for a signed transaction by forwarding attributes.
        computation = executor.build_computation(message, cast(SignedTransactionAPI, spoofed))
    except VMError:
        return PrivateOutcome(None, contract_address, gas, 0)
    gas_used = gas - computation.get_gas_remaining()
    refusal = None if refuse is None or computation.is_error else refuse(computation)
    if refusal is not None:
        state.revert(before)
        return PrivateOutcome(None, contract_address, gas_used, 0, refusal)
    for account in computation.get_accounts_for_deletion():
        state.delete_account(account)
    state.clear_transient_storage()
    gas_used -= executor.calculate_gas_refund(computation, gas_used)
    return PrivateOutcome(computation, contract_address, gas_used, 0 if computation.is_error else 1)


#: The account in every party group's private state that records the group's history:
#: storage slot 0 holds a hash chained over every private transaction the group
#: executed (its hash and payload hash, in chain order). The group root then commits to
#: the history, not only to its outcome: a member that skipped a transaction whose
#: effect was later overwritten, or a disclosed history with one left out, no longer
#: reaches the same root. Nonce 1 keeps the account from ever counting as empty.
HISTORY_ADDRESS = Address(keccak(b"quorum-py/group-history/v1")[12:])


def record_history(state: StateAPI, transaction_hash: bytes, payload_hash: bytes) -> None:
    """Chain one executed private transaction into the group's history (after it ran,
    whatever its status); the same on every member and in a disclosure's replay."""
    previous = int(state.get_storage(HISTORY_ADDRESS, 0)).to_bytes(32, "big")
    chained = keccak(previous + transaction_hash + payload_hash)
    if state.get_nonce(HISTORY_ADDRESS) == 0:
        state.set_nonce(HISTORY_ADDRESS, 1)
    state.set_storage(HISTORY_ADDRESS, 0, int.from_bytes(chained, "big"))
