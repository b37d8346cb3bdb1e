"""The transaction pool: what waits to be put in a block, in an order that will execute.

Rules are geth's, so that users see the behaviour and the messages they know:

* Per sender, transactions run in nonce order. Those that continue the account's nonce
  without a gap are *pending* (executable); those after a gap are *queued* until the
  gap fills.
* A transaction with the nonce of one already waiting replaces it only if it pays more:
  both its fee cap and its tip must be at least ``PRICE_BUMP_PERCENT`` higher (strictly
  higher when the old price is 0, as on a free-gas network).
* Refusals use geth's wording: "nonce too low", "already known",
  "replacement transaction underpriced", "insufficient funds for gas * price + value".

The pool holds no py-evm objects beyond the signed transactions and is used from the
event loop thread only; state checks (nonce, balance) are passed in by the caller,
which reads them on the chain thread.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from eth.abc import SignedTransactionAPI
from eth_typing import Address, Hash32

from quorum_node.errors import TransactionRejected

PRICE_BUMP_PERCENT = 10
MAX_POOL_SIZE = 100_000


def fee_cap(transaction: SignedTransactionAPI) -> int:
    return int(transaction.max_fee_per_gas)


def tip_cap(transaction: SignedTransactionAPI) -> int:
    return int(transaction.max_priority_fee_per_gas)


@dataclass
class _Waiting:
    transaction: SignedTransactionAPI
    sender: Address


@dataclass
class _SenderQueue:
    """One sender's waiting transactions, by nonce."""

    state_nonce: int
    by_nonce: dict[int, _Waiting] = field(default_factory=dict)

    def pending_run(self) -> list[_Waiting]:
        """The waiting transactions that continue the account nonce without a gap."""
        run = []
        nonce = self.state_nonce
        while nonce in self.by_nonce:
            run.append(self.by_nonce[nonce])
            nonce += 1
        return run


@dataclass(frozen=True)
class AccountView:
    """What the pool needs to know of an account, read from the head state."""

    nonce: int
    balance: int


class TransactionPool:
    """Waiting transactions by sender and nonce; see the module docstring."""

    def __init__(self, max_size: int = MAX_POOL_SIZE) -> None:
        self._senders: dict[Address, _SenderQueue] = {}
        # Insertion order is arrival order: ``executable`` relies on it.
        self._by_hash: dict[Hash32, _Waiting] = {}
        self._max_size = max_size

    def __len__(self) -> int:
        return len(self._by_hash)

    def __contains__(self, transaction_hash: bytes) -> bool:
        return transaction_hash in self._by_hash

    def lookup(self, transaction_hash: bytes) -> tuple[SignedTransactionAPI, Address] | None:
        """A waiting transaction and its sender, by hash."""
        waiting = self._by_hash.get(Hash32(transaction_hash))
        return (waiting.transaction, waiting.sender) if waiting else None

    def add(
        self, transaction: SignedTransactionAPI, sender: Address, account: AccountView
    ) -> SignedTransactionAPI | None:
        """Admit ``transaction``; return the one it replaced, if any.

        ``account`` is the sender's state at the head; the caller has already checked
        the signature, chain id, intrinsic gas and block gas limit.
        """
        transaction_hash = Hash32(transaction.hash)
        if transaction_hash in self._by_hash:
            raise TransactionRejected("already known")
        queue = self._senders.get(sender)
        if queue is None:
            queue = _SenderQueue(state_nonce=account.nonce)
        else:
            queue.state_nonce = max(queue.state_nonce, account.nonce)
        if transaction.nonce < queue.state_nonce:
            raise TransactionRejected("nonce too low")
        cost = transaction.gas * fee_cap(transaction) + transaction.value
        if account.balance < cost:
            raise TransactionRejected("insufficient funds for gas * price + value")
        replaced = queue.by_nonce.get(transaction.nonce)
        if replaced is not None:
            self._check_replacement(replaced.transaction, transaction)
        elif len(self._by_hash) >= self._max_size:
            raise TransactionRejected("txpool is full")

        waiting = _Waiting(transaction, sender)
        queue.by_nonce[transaction.nonce] = waiting
        self._senders[sender] = queue
        self._by_hash[transaction_hash] = waiting
        if replaced is not None:
            del self._by_hash[Hash32(replaced.transaction.hash)]
            return replaced.transaction
        return None

    @staticmethod
    def _check_replacement(old: SignedTransactionAPI, new: SignedTransactionAPI) -> None:
        for price_of in (fee_cap, tip_cap):
            old_price, new_price = price_of(old), price_of(new)
            threshold = old_price * (100 + PRICE_BUMP_PERCENT) // 100
            if new_price <= old_price or new_price < threshold:
                raise TransactionRejected("replacement transaction underpriced")

    def pending_nonce(self, sender: Address, state_nonce: int) -> int:
        """The nonce the sender's next transaction should use (``"pending"`` tag)."""
        queue = self._senders.get(sender)
        if queue is None:
            return state_nonce
        queue.state_nonce = max(queue.state_nonce, state_nonce)
        return queue.state_nonce + len(queue.pending_run())

    def executable(
        self, max_gas: int | None = None, max_count: int | None = None
    ) -> list[SignedTransactionAPI]:
        """Pending transactions in an order that executes: nonce order per sender,
        senders interleaved by arrival, at most ``max_gas`` of declared gas and
        ``max_count`` transactions in all.

        Nothing is sorted: ``_by_hash`` holds every waiting transaction in arrival order,
        and a sender's k-th pending transaction in that order takes the sender's k-th
        nonce (a later nonce may have arrived before an earlier one). The walk stops as
        soon as the block is full, so a large pool costs little per block.
        """
        run_ends: dict[Address, int] = {}
        taken: dict[Address, int] = {}
        selected: list[SignedTransactionAPI] = []
        gas = 0
        for waiting in self._by_hash.values():
            if max_count is not None and len(selected) >= max_count:
                break
            queue = self._senders[waiting.sender]
            run_end = run_ends.get(waiting.sender)
            if run_end is None:
                run_end = run_ends[waiting.sender] = queue.state_nonce + len(queue.pending_run())
            if not queue.state_nonce <= waiting.transaction.nonce < run_end:
                continue  # queued behind a gap, or already included
            slot = taken.get(waiting.sender, 0)
            chosen = queue.by_nonce[queue.state_nonce + slot].transaction
            if max_gas is not None and gas + chosen.gas > max_gas:
                break
            taken[waiting.sender] = slot + 1
            gas += chosen.gas
            selected.append(chosen)
        return selected

    def waiting(self) -> list[SignedTransactionAPI]:
        """Every transaction in the pool, pending and queued, in nonce order per sender."""
        return [
            queue.by_nonce[nonce].transaction
            for queue in self._senders.values()
            for nonce in sorted(queue.by_nonce)
        ]

    def has_executable(self) -> bool:
        return any(queue.state_nonce in queue.by_nonce for queue in self._senders.values())

    def remove_included(self, included: Iterable[tuple[SignedTransactionAPI, Address]]) -> None:
        """Forget transactions that a block included and advance their senders' nonces."""
        for transaction, sender in included:
            self._forget(Hash32(transaction.hash))
            queue = self._senders.get(sender)
            if queue is None:
                continue
            queue.state_nonce = max(queue.state_nonce, transaction.nonce + 1)
            for stale in [n for n in queue.by_nonce if n < queue.state_nonce]:
                self._forget(Hash32(queue.by_nonce[stale].transaction.hash))
            if not queue.by_nonce:
                self._senders.pop(sender, None)  # _forget may have dropped it already

    def remove(self, transactions: Sequence[SignedTransactionAPI]) -> None:
        """Drop transactions that can never execute (a block builder refused them)."""
        for transaction in transactions:
            self._forget(Hash32(transaction.hash))

    def _forget(self, transaction_hash: Hash32) -> None:
        waiting = self._by_hash.pop(transaction_hash, None)
        if waiting is None:
            return
        queue = self._senders.get(waiting.sender)
        if queue is not None:
            if queue.by_nonce.get(waiting.transaction.nonce) is waiting:
                del queue.by_nonce[waiting.transaction.nonce]
            if not queue.by_nonce:
                del self._senders[waiting.sender]

    def content(
        self,
    ) -> tuple[
        dict[Address, list[SignedTransactionAPI]], dict[Address, list[SignedTransactionAPI]]
    ]:
        """(pending, queued) transactions per sender, for ``txpool_content``."""
        pending: dict[Address, list[SignedTransactionAPI]] = {}
        queued: dict[Address, list[SignedTransactionAPI]] = {}
        for sender, queue in self._senders.items():
            run = {waiting.transaction.nonce for waiting in queue.pending_run()}
            for nonce in sorted(queue.by_nonce):
                target = pending if nonce in run else queued
                target.setdefault(sender, []).append(queue.by_nonce[nonce].transaction)
        return pending, queued
