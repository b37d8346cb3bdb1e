"""A party group's private state as a list of accounts, to hand over to an added party
and to check against a signed root (chain thread, no network).

The state trie is keyed by the hash of each address, so the hand-over carries the trie's
leaves as they are: per account its hashed key, its RLP (nonce, balance, storage root,
code hash), its storage leaves and its code. The receiver rebuilds each storage trie and
the account trie in memory and accepts the state only if every storage root, every code
hash and the final root come out as claimed; then, and only then, it copies the nodes
into its own database.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

import rlp
from eth.abc import DatabaseAPI
from eth.constants import BLANK_ROOT_HASH, EMPTY_SHA3
from eth.rlp.accounts import Account
from eth_hash.auto import keccak
from eth_utils import to_checksum_address
from trie import HexaryTrie
from trie.iter import NodeIterator

from quorum_node.privacy.state import HISTORY_ADDRESS
from quorum_node.privacy.store import PrivateContract


class HandoverError(ValueError):
    """A handed-over state that is malformed or does not hash to its claimed root."""


def _hex(raw: bytes) -> str:
    return "0x" + raw.hex()


def _bytes(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise HandoverError(f"{what}: expected 0x-prefixed hex")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise HandoverError(f"{what}: not hex") from None


def _leaves(db: DatabaseAPI, root: bytes) -> list[tuple[bytes, bytes]]:
    if root == BLANK_ROOT_HASH:
        return []
    trie = HexaryTrie(db, root)
    return [(bytes(key), bytes(value)) for key, value in NodeIterator(trie).items()]


def collect_accounts(db: DatabaseAPI, root: bytes) -> list[dict[str, Any]]:
    """Every account of the state under ``root``, with its storage and code."""
    accounts = []
    for key, encoded in _leaves(db, root):
        account = rlp.decode(encoded, sedes=Account)
        code = b"" if account.code_hash == EMPTY_SHA3 else bytes(db[account.code_hash])
        accounts.append(
            {
                "key": _hex(key),
                "account": _hex(encoded),
                "storage": [
                    [_hex(slot), _hex(value)] for slot, value in _leaves(db, account.storage_root)
                ],
                "code": _hex(code),
            }
        )
    return accounts


def contracts_json(contracts: Sequence[tuple[bytes, PrivateContract]]) -> list[dict[str, Any]]:
    return [
        {
            "address": to_checksum_address(address),
            "creationTransaction": _hex(contract.creation_transaction),
            "privacyFlag": contract.privacy_flag,
            "mandatoryFor": list(contract.mandatory_for),
        }
        for address, contract in contracts
    ]


@dataclass(frozen=True)
class RebuiltState:
    """A handed-over state rebuilt in memory: its root and the nodes that make it."""

    root: bytes
    nodes: dict[bytes, bytes]
    accounts: dict[bytes, bytes]  # hashed address → account RLP

    def install(self, db: MutableMapping[bytes, bytes]) -> None:
        for key, value in self.nodes.items():
            db[key] = value


def rebuild(accounts: list[Any] | tuple[Any, ...]) -> RebuiltState:
    """Rebuild the state trie from handed-over accounts; ``HandoverError`` if an account's
    storage or code does not match what its RLP claims."""
    nodes: dict[bytes, bytes] = {}
    account_trie = HexaryTrie(nodes)
    leaves: dict[bytes, bytes] = {}
    for index, entry in enumerate(accounts):
        if not isinstance(entry, dict):
            raise HandoverError(f"accounts[{index}]: expected an object")
        key = _bytes(entry.get("key"), f"accounts[{index}].key")
        encoded = _bytes(entry.get("account"), f"accounts[{index}].account")
        try:
            account = rlp.decode(encoded, sedes=Account)
        except rlp.exceptions.DecodingError:
            raise HandoverError(f"accounts[{index}].account: not an account RLP") from None
        storage = HexaryTrie(nodes)
        slots = entry.get("storage")
        if not isinstance(slots, list):
            raise HandoverError(f"accounts[{index}].storage: expected a list")
        for pair in slots:
            if not isinstance(pair, list) or len(pair) != 2:
                raise HandoverError(f"accounts[{index}].storage: expected [slot, value] pairs")
            storage[_bytes(pair[0], "slot")] = _bytes(pair[1], "value")
        if storage.root_hash != account.storage_root:
            raise HandoverError(
                f"account {_hex(key)}: its storage does not hash to its storage root"
            )
        code = _bytes(entry.get("code"), f"accounts[{index}].code")
        if keccak(code) != account.code_hash:
            raise HandoverError(f"account {_hex(key)}: its code does not hash to its code hash")
        if code:
            nodes[account.code_hash] = code
        account_trie[key] = encoded
        leaves[key] = encoded
    return RebuiltState(bytes(account_trie.root_hash), nodes, leaves)


def differing_accounts(
    offered: dict[bytes, bytes], agreed: dict[bytes, bytes], addresses: list[bytes]
) -> list[dict[str, Any]]:
    """The accounts in which an offered state differs from the agreed one, named by
    address where the address is known (the group's contracts, the history account)."""
    names = {keccak(address): address for address in [*addresses, HISTORY_ADDRESS]}
    found = []
    for key in sorted(set(offered) | set(agreed)):
        if offered.get(key) == agreed.get(key):
            continue
        address = names.get(key)
        found.append(
            {
                "key": _hex(key),
                "address": to_checksum_address(address) if address else None,
                "offered": _hex(offered[key]) if key in offered else None,
                "agreed": _hex(agreed[key]) if key in agreed else None,
            }
        )
    return found
