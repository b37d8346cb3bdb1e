"""eth_call and eth_estimateGas on a party group's private state (``chain.calls.CallRunner``).

A call on private state runs as a private transaction would (``state.run_private_message``):
no fee, no nonce bump of the sender's public account, public accounts read-only.
"""

from __future__ import annotations

from collections.abc import Mapping

from eth.abc import AtomicDatabaseAPI, BlockHeaderAPI, ComputationAPI, StateAPI
from eth_typing import Address, Hash32

from quorum_node.chain.calls import AccountOverride, Call, CallError, apply_overrides
from quorum_node.chain.service import ChainService
from quorum_node.chain.transactions import QuorumTransactionBuilder
from quorum_node.privacy.state import private_state, run_private_message


class PrivateCalls:
    """Calls on the private state of one party group after ``header``."""

    def __init__(
        self,
        chain: ChainService,
        db: AtomicDatabaseAPI,
        header: BlockHeaderAPI,
        group_root: Hash32,
    ) -> None:
        self._chain = chain
        self._db = db
        self.header = header
        self._group_root = group_root

    def state(self) -> StateAPI:
        """A throw-away private state after ``header`` (reading public accounts through)."""
        return private_state(self._chain.vm_at(self.header), self._db, self._group_root)

    def run(
        self, call: Call, gas: int, overrides: Mapping[Address, AccountOverride]
    ) -> ComputationAPI:
        state = self.state()
        apply_overrides(state, overrides)
        outcome = run_private_message(
            state,
            sender=call.sender,
            to=call.to,
            nonce=state.get_nonce(call.sender),
            gas=gas,
            payload=call.data,
            unsigned_builder=QuorumTransactionBuilder,
        )
        if outcome.computation is None:
            raise CallError(f"intrinsic gas too low: have {gas}")
        return outcome.computation

    def code_at(self, address: Address) -> bytes:
        return bytes(self.state().get_code(address))
