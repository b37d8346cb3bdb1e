"""GoQuorum's rule for privacy flags: a private transaction that touches a private
contract carries that contract's flag, and, for flag 2, every mandatory recipient the
contract was created with.

The same function decides at submission (``PrivacyService``, on the sender's node,
before the payload leaves) and at execution (``PrivacyProcessor``, on every party,
with the flag and mandatory recipients authenticated in the manager's envelope), so a
transaction that got past one node's submission check is refused identically by every
party: status 0, no state change.

Messages are GoQuorum's and Tessera's:

* "sent privacy flag doesn't match all affected contract flags": GoQuorum
  ``internal/ethapi/api.go`` (``simulateExecutionForPE``) and
  ``core/state_transition_pmh.go`` (``verify``, at execution);
* "PrivacyMetadata not found: …": a flag other than 0 sent to a standard private
  contract, which has no privacy metadata in GoQuorum (``core/state/state_object.go``);
* "Privacy metadata mismatched with Affected Txn <creation hash>": Tessera's
  ``PrivacyHelperImpl.validateSendRequest``, when a flag-2 transaction leaves out one
  of the contract's mandatory recipients (Tessera names the creation's payload hash in
  base64; here it is the creation transaction's hash, hex).

Flags 1 and 3 need no more than the flag match here. A party group's contract can
only be reached by a transaction of that group (``PrivacyService.check_contract_group``)
and every transaction of the group goes to all its members and executes on the one
group state, so a non-party cannot change the contract (flag 1's guarantee) and no
member can be left out of a transaction or execute it on another state (what flag 3's
affected-contracts and exec-hash checks enforce in GoQuorum).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection

from eth.abc import ComputationAPI
from eth_typing import Address
from eth_utils import to_checksum_address

from quorum_node.privacy.params import MANDATORY_RECIPIENTS, STANDARD_PRIVATE
from quorum_node.privacy.state import Refuse
from quorum_node.privacy.store import PrivateContract

FLAG_MISMATCH = "sent privacy flag doesn't match all affected contract flags"

#: The execHash a flag-3 send carries. Tessera (and our manager) require one for flag
#: 3; GoQuorum puts there the Merkle root of the simulated affected contracts. Here
#: the guarantee comes from the per-group state, so nothing is simulated and nothing
#: compares this value: it is a fixed, documented tag, the same from every sender (a
#: raw transaction stored with its terms must be sent again with the same).
STATE_VALIDATION_EXEC_HASH = hashlib.sha3_256(
    b"quorum-py: private state validation holds by party group"
).digest()


def flag_violation(
    address: bytes,
    contract: PrivateContract,
    privacy_flag: int,
    mandatory_for: Collection[str],
) -> str | None:
    """Why a private transaction with ``privacy_flag`` and ``mandatory_for`` may not
    touch ``contract`` (at ``address``), or None if it may."""
    if contract.privacy_flag == STANDARD_PRIVATE and privacy_flag != STANDARD_PRIVATE:
        return (
            "PrivacyMetadata not found: The provided contract does not have privacy "
            f"metadata: {to_checksum_address(address)}"
        )
    if contract.privacy_flag != privacy_flag:
        return FLAG_MISMATCH
    if privacy_flag == MANDATORY_RECIPIENTS and not set(contract.mandatory_for) <= set(
        mandatory_for
    ):
        creation = contract.creation_transaction.hex()
        return f"Privacy metadata mismatched with Affected Txn 0x{creation}"
    return None


def touched_addresses(computation: ComputationAPI) -> list[Address]:
    """Every account whose code ran or whose storage was used in a computation and its
    sub-calls, in order, once each (GoQuorum's "affected contracts"); a creation's new
    address is not among them (it has no privacy metadata yet)."""
    seen: dict[Address, None] = {}

    def visit(node: ComputationAPI) -> None:
        if not node.msg.is_create:
            seen.setdefault(Address(node.msg.storage_address), None)
            seen.setdefault(Address(node.msg.code_address), None)
        for child in node.children:
            visit(child)

    visit(computation)
    return list(seen)


def flag_refusal(
    contract_of: Callable[[Address], PrivateContract | None],
    group_id: bytes,
    privacy_flag: int,
    mandatory_for: Collection[str],
) -> Refuse:
    """The execution-time rule as ``run_private_message``'s ``refuse``: every private
    contract of the group that the computation touched must carry the transaction's
    flag and, for flag 2, every mandatory recipient. ``contract_of`` is where the
    contracts' metadata comes from: the node's private store, or a disclosure replay's
    own record of what it created."""

    def refuse(computation: ComputationAPI) -> str | None:
        for address in touched_addresses(computation):
            contract = contract_of(address)
            if contract is None or contract.group_id != group_id:
                continue
            reason = flag_violation(address, contract, privacy_flag, mandatory_for)
            if reason is not None:
                return reason
        return None

    return refuse
