"""What the in-process tests (``tests/unit``) build nodes from: development keys and a
genesis that funds them, signed public and private transactions, an in-memory database
that can hold a block's writes aside, and contract artifacts. No processes, no ports.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from eth.abc import AtomicDatabaseAPI, SignedTransactionAPI
from eth_keys.datatypes import PrivateKey
from eth_typing import Address

from quorum_node import contracts
from quorum_node.accounts import AccountStore
from quorum_node.chain.db import OverlayAtomicDB, PendingWrites
from quorum_node.chain.genesis import DEFAULT_CHAIN_ID, Genesis, GenesisAccount
from quorum_node.chain.service import ChainService, PrivateView
from quorum_node.chain.transactions import (
    PRIVATE_MIN_GAS,
    sign_private,
    unsigned_private_transaction,
)
from quorum_node.chain.vm import QuorumVM
from quorum_node.node import Node, PrivateBlockSource
from tests.support.node_process import TEST_KEYS

CHAIN_ID = DEFAULT_CHAIN_ID
KEYS = [PrivateKey(key) for key in TEST_KEYS[:4]]
ADDRESSES = [Address(key.public_key.to_canonical_address()) for key in KEYS]
#: Holds nothing at genesis: every transaction it signs costs more than it has.
PENNILESS_KEY = PrivateKey(TEST_KEYS[4])
PENNILESS = Address(PENNILESS_KEY.public_key.to_canonical_address())
RECIPIENT = Address(b"\x42" * 20)
COINBASE = Address(b"\xc0" * 20)
FUNDS = 10**24


def genesis() -> Genesis:
    """The same genesis every time: ``ADDRESSES`` funded, nothing else."""
    return Genesis(chain_id=CHAIN_ID, alloc={a: GenesisAccount(balance=FUNDS) for a in ADDRESSES})


class MemoryOverlayDB(OverlayAtomicDB):
    """The node's database semantics (scopes, captured writes) over a dict.

    ``commits`` lists every atomic commit in order, so a test can tell which writes
    became durable together.
    """

    def __init__(self) -> None:
        super().__init__()
        self.committed: dict[bytes, bytes] = {}
        self.commits: list[PendingWrites] = []

    def _read_committed(self, key: bytes) -> bytes | None:
        return self.committed.get(key)

    def committed_items(self, prefix: bytes) -> list[tuple[bytes, bytes]]:
        return sorted((k, v) for k, v in self.committed.items() if k.startswith(prefix))

    def _commit(self, writes: PendingWrites) -> None:
        self.commits.append(dict(writes))
        for key, value in writes.items():
            if value is None:
                self.committed.pop(key, None)
            else:
                self.committed[key] = value


def new_chain(
    db: AtomicDatabaseAPI | None = None, private_view: PrivateView | None = None
) -> ChainService:
    return ChainService(db if db is not None else MemoryOverlayDB(), genesis(), private_view)


def new_node(
    chain: ChainService | None = None,
    *,
    private_blocks: PrivateBlockSource | None = None,
    held_keys: tuple[PrivateKey, ...] = (),
) -> Node:
    accounts = AccountStore()
    for key in held_keys:
        accounts.add_key(key.to_bytes())
    return Node(chain or new_chain(), accounts, COINBASE, private_blocks=private_blocks)


def transfer(
    key: PrivateKey,
    nonce: int,
    *,
    value: int = 1,
    gas: int = 21_000,
    gas_price: int = 0,
    to: bytes = RECIPIENT,
    chain_id: int = CHAIN_ID,
) -> SignedTransactionAPI:
    """A signed legacy (EIP-155) value transfer."""
    unsigned = QuorumVM.get_transaction_builder().create_unsigned_transaction(
        nonce=nonce, gas_price=gas_price, gas=gas, to=Address(to), value=value, data=b""
    )
    return unsigned.as_signed_transaction(key, chain_id=chain_id)  # type: ignore[no-any-return]


def private_transaction(
    key: PrivateKey,
    nonce: int,
    payload_hash: bytes,
    *,
    to: bytes | None = None,
    gas: int = 3_000_000,
) -> SignedTransactionAPI:
    """A private transaction (v = 37/38) carrying ``payload_hash`` (64 bytes)."""
    unsigned = unsigned_private_transaction(
        nonce=nonce, gas=max(gas, PRIVATE_MIN_GAS), gas_price=0, to=to, payload_hash=payload_hash
    )
    return sign_private(unsigned, key)


@cache
def artifact(name: str) -> dict[str, Any]:
    """A compiled contract of ``quorum_node/contracts``."""
    return contracts.artifact(name)


def bytecode(name: str) -> bytes:
    return bytes.fromhex(str(artifact(name)["bytecode"]).removeprefix("0x"))
