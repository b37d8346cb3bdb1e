"""Running a transaction that is not signed and not kept: eth_call, eth_estimateGas and
eth_createAccessList.

A call runs through py-evm's own transaction executor with the sender spoofed and a gas
price of 0, so it is charged intrinsic gas, refunds and the 63/64 rule exactly as a mined
transaction would be, and its estimate matches what the block will use. Nothing of the
state it touches is persisted: the VM is thrown away afterwards.

``call`` and ``estimate_gas`` run through a ``CallRunner``: ``PublicCalls`` here, or the
privacy layer's runner over a party group's private state, so the estimate's search is
written once for both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, cast

from eth.abc import (
    BlockHeaderAPI,
    ComputationAPI,
    StateAPI,
    UnsignedTransactionAPI,
    VirtualMachineAPI,
)
from eth.constants import CREATE_CONTRACT_ADDRESS
from eth.db.account import AccountDB
from eth.exceptions import Revert
from eth.vm.base import VM
from eth.vm.forks.berlin.transactions import UnsignedAccessListTransaction
from eth.vm.spoof import SpoofTransaction
from eth.vm.state import BaseState
from eth_abi import decode as abi_decode
from eth_typing import Address
from eth_utils import ValidationError

from quorum_node.chain.service import ChainService

#: geth's default RPCGasCap: a call without "gas" may use this much, and no more.
CALL_GAS_CAP = 50_000_000
#: The intrinsic gas of a transaction without data: all a plain value transfer costs.
TRANSFER_GAS = 21_000
_ERROR_SELECTOR = bytes.fromhex("08c379a0")
_PANIC_SELECTOR = bytes.fromhex("4e487b71")
_PRECOMPILES = {Address((i).to_bytes(20, "big")) for i in range(1, 0x12)}


class CallError(Exception):
    """The call could not run (refused before execution, or failed without revert data)."""


class CallReverted(Exception):
    def __init__(self, reason: str | None, revert_data: bytes) -> None:
        super().__init__(reason or "execution reverted")
        self.reason = reason
        self.revert_data = revert_data


@dataclass(frozen=True)
class AccountOverride:
    """One entry of geth's state-override set (third parameter of eth_call)."""

    balance: int | None = None
    nonce: int | None = None
    code: bytes | None = None
    state: dict[int, int] | None = None
    state_diff: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Call:
    sender: Address
    to: Address | None
    value: int
    data: bytes
    gas: int | None
    access_list: tuple[tuple[Address, tuple[int, ...]], ...] | None = None


def decode_revert_reason(output: bytes) -> str | None:
    """The message of ``Error(string)`` or a description of ``Panic(uint256)``."""
    try:
        if output[:4] == _ERROR_SELECTOR:
            return str(abi_decode(["string"], output[4:])[0])
        if output[:4] == _PANIC_SELECTOR:
            return f"panic: code 0x{abi_decode(['uint256'], output[4:])[0]:x}"
    except Exception:  # malformed revert data is still returned raw in "data"
        return None
    return None


def apply_overrides(state: StateAPI, overrides: Mapping[Address, AccountOverride]) -> None:
    for address, override in overrides.items():
        if override.balance is not None:
            state.set_balance(address, override.balance)
        if override.nonce is not None:
            state.set_nonce(address, override.nonce)
        if override.code is not None:
            state.set_code(address, override.code)
        if override.state is not None:
            state.delete_storage(address)
            for slot, value in override.state.items():
                state.set_storage(address, slot, value)
        for slot, value in override.state_diff.items():
            state.set_storage(address, slot, value)


class CallRunner(Protocol):
    """Runs one call on a fresh, throw-away copy of a state after ``header``.

    ``PublicCalls`` runs on the public state; the privacy layer runs on a party group's
    private state. ``estimate_gas`` and ``call`` are the same for both.
    """

    header: BlockHeaderAPI

    def run(
        self, call: Call, gas: int, overrides: Mapping[Address, AccountOverride]
    ) -> ComputationAPI: ...

    def code_at(self, address: Address) -> bytes:
        """``address``'s code in the state calls run on (before any override)."""
        ...


class PublicCalls:
    """Calls on the public state after ``header``, through py-evm's own executor."""

    def __init__(self, chain: ChainService, header: BlockHeaderAPI) -> None:
        self._chain = chain
        self.header = header

    def run(
        self, call: Call, gas: int, overrides: Mapping[Address, AccountOverride]
    ) -> ComputationAPI:
        return run_public(self._chain.vm_at(self.header), call, gas, overrides)

    def code_at(self, address: Address) -> bytes:
        return bytes(self._chain.state_at(self.header).get_code(address))


def run_public(
    vm: VirtualMachineAPI, call: Call, gas: int, overrides: Mapping[Address, AccountOverride]
) -> ComputationAPI:
    """Run ``call`` on ``vm``'s state as a mined transaction would run, nothing kept."""
    state = vm.state
    apply_overrides(state, overrides)
    nonce = state.get_nonce(call.sender)
    to = call.to if call.to is not None else CREATE_CONTRACT_ADDRESS
    unsigned: UnsignedTransactionAPI
    if call.access_list:
        # chain_context is set by py-evm's VM but not declared on VirtualMachineAPI.
        chain_id = cast(VM, vm).chain_context.chain_id
        unsigned = UnsignedAccessListTransaction(
            chain_id, nonce, 0, gas, to, call.value, call.data, call.access_list
        )
    else:
        unsigned = vm.create_unsigned_transaction(
            nonce=nonce, gas_price=0, gas=gas, to=to, value=call.value, data=call.data
        )
    spoofed = SpoofTransaction(unsigned, from_=call.sender, sender=call.sender)
    if gas < spoofed.intrinsic_gas:
        raise CallError(f"intrinsic gas too low: have {gas}, want {spoofed.intrinsic_gas}")
    try:
        return state.apply_transaction(spoofed)  # type: ignore[arg-type]
    except ValidationError as exc:
        message = str(exc)
        if "balance" in message.lower() or "afford" in message.lower():
            raise CallError("insufficient funds for gas * price + value") from None
        raise CallError(message) from None


def _gas_cap(header: BlockHeaderAPI, requested: int | None) -> int:
    cap = min(header.gas_limit, CALL_GAS_CAP)
    return cap if requested is None else requested


def _raise_if_failed(computation: ComputationAPI) -> None:
    if not computation.is_error:
        return
    if isinstance(computation.error, Revert):
        raise CallReverted(decode_revert_reason(computation.output), computation.output)
    raise CallError(str(computation.error) or type(computation.error).__name__)


def call(
    runner: CallRunner,
    request: Call,
    overrides: Mapping[Address, AccountOverride] | None = None,
) -> bytes:
    """What ``eth_call`` returns: the output, or an exception carrying the revert data."""
    computation = runner.run(request, _gas_cap(runner.header, request.gas), overrides or {})
    _raise_if_failed(computation)
    return bytes(computation.output)


def _is_plain_transfer(
    runner: CallRunner, request: Call, overrides: Mapping[Address, AccountOverride]
) -> bool:
    """No call data, and a recipient without code (after any state override)."""
    if request.data or request.to is None:
        return False
    override = overrides.get(request.to)
    if override is not None and override.code is not None:
        return not override.code
    return not runner.code_at(request.to)


def estimate_gas(
    runner: CallRunner,
    request: Call,
    overrides: Mapping[Address, AccountOverride] | None = None,
) -> int:
    """The least gas with which ``request`` succeeds, found as geth finds it.

    One run at the cap tells whether it can succeed at all and how much it used; the
    answer then lies between that use and the cap, and is usually found on the first
    optimistic guess (use plus refund, scaled for the 63/64 rule), so a simple call
    costs two or three executions instead of thirty.
    """
    cap = _gas_cap(runner.header, request.gas)
    overrides = overrides or {}
    if _is_plain_transfer(runner, request, overrides) and cap >= TRANSFER_GAS:
        # geth answers exactly 21000 for a value transfer to an account without code,
        # after checking that it runs with that much (an access list may cost more).
        try:
            plain = runner.run(request, TRANSFER_GAS, overrides)
        except CallError:
            plain = None
        if plain is not None and not plain.is_error:
            return TRANSFER_GAS
    first = runner.run(request, cap, overrides)
    if first.is_error:
        if isinstance(first.error, Revert):
            raise CallReverted(decode_revert_reason(first.output), first.output)
        raise CallError(f"gas required exceeds allowance ({cap})")
    used = cap - first.get_gas_remaining()

    def succeeds(gas: int) -> bool:
        try:
            computation = runner.run(request, gas, overrides)
        except CallError:
            return False
        return not computation.is_error

    low = used - 1
    high = cap
    optimistic = min(cap, (used + first.get_gas_refund() + 2300) * 64 // 63)
    if optimistic < high and succeeds(optimistic):
        high = optimistic
    while high - low > 1 and (high - low) * 1000 > high * 15:  # within 1.5%, as geth stops
        middle = (low + high) // 2
        if succeeds(middle):
            high = middle
        else:
            low = middle
    return high


def access_list(
    chain: ChainService,
    header: BlockHeaderAPI,
    request: Call,
    overrides: Mapping[Address, AccountOverride] | None = None,
) -> tuple[list[tuple[Address, list[int]]], int, str | None]:
    """(access list, gas used with it, error) as ``eth_createAccessList`` reports them.

    The addresses and slots the call touched are read back from py-evm's EIP-2929 warm
    set. As in geth's access-list tracer, the sender, the recipient, the coinbase and
    precompiles are listed only for the storage slots the call touched in them (a call
    that writes the recipient's storage lists it with those slots).
    """
    vm = chain.vm_at(header)
    computation = run_public(vm, request, _gas_cap(header, request.gas), overrides or {})
    touched: dict[Address, list[int]] = {}
    # py-evm keeps the warm set in a JournalDB that cannot be iterated; its pending diff
    # lists every key marked warm since the transaction began (address, or address+slot).
    account_db = cast(AccountDB, cast(BaseState, vm.state)._account_db)  # noqa: SLF001
    warm_set = account_db._journal_accessed_state  # noqa: SLF001
    for key in warm_set.diff().pending_keys():
        key_bytes = bytes(key)
        address = Address(key_bytes[:20])
        slots = touched.setdefault(address, [])
        if len(key_bytes) > 20:
            slots.append(int.from_bytes(key_bytes[20:], "big"))
    excluded = {request.sender, vm.state.coinbase} | _PRECOMPILES
    if request.to is not None:
        excluded.add(request.to)
    entries = [
        (address, sorted(set(slots)))
        for address, slots in touched.items()
        if slots or address not in excluded
    ]
    error = None
    if computation.is_error:
        error = (
            "execution reverted"
            if isinstance(computation.error, Revert)
            else str(computation.error)
        )
    with_list = Call(
        request.sender,
        request.to,
        request.value,
        request.data,
        request.gas,
        tuple((address, tuple(slots)) for address, slots in entries),
    )
    gas_used = (
        _gas_cap(header, request.gas)
        - run_public(
            chain.vm_at(header),
            with_list,
            _gas_cap(header, request.gas),
            overrides or {},
        ).get_gas_remaining()
    )
    return entries, gas_used, error
