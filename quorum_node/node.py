"""A node: the chain, its pool, its accounts and its consensus engine, wired together.

Transactions enter through ``submit``; blocks are made by the engine calling
``produce_block`` (solo) or ``prepare_block``/``commit_prepared`` (Raft), and blocks
other nodes made enter through ``import_block``; every committed block is announced to
listeners (filters, subscriptions) on the event loop. All chain access goes through the
chain thread.

The private half of each block comes from a ``PrivateBlockSource`` (the privacy layer,
``privacy.blocks``): the node asks it for a block's payloads before the chain thread
executes the block, and never imports the privacy layer itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from eth.abc import BlockAPI, BlockHeaderAPI, SignedTransactionAPI
from eth_typing import Address, Hash32
from eth_utils import ValidationError, encode_hex

from quorum_node.accounts import AccountStore
from quorum_node.chain.blocks import decode_block, encode_block
from quorum_node.chain.executor import ChainExecutor, CoalescedReads
from quorum_node.chain.records import TransactionRecord
from quorum_node.chain.service import ChainService, CommittedBlock, PreparedBlock, PrivateBlock
from quorum_node.chain.transactions import (
    check_private_shape,
    is_private,
    mark_validated,
    take_hash_from_wire,
)
from quorum_node.chain.vm import QuorumVM
from quorum_node.errors import NodeCatchingUp, PrivateDataUnavailable, TransactionRejected
from quorum_node.local_transactions import LocalTransactions
from quorum_node.txpool import AccountView, TransactionPool
from quorum_shared.log_throttle import ThrottledLog

logger = logging.getLogger(__name__)

MAX_TRANSACTION_BYTES = 128 * 1024  # geth's txMaxSize
#: How long a send waits for this node to catch up before it is refused (``until_current``).
CATCH_UP_SECONDS = 5.0
#: While it waits, how often it looks again at what no block announces (a leader heard).
CATCH_UP_RECHECK_SECONDS = 0.05
#: Mined local transactions are deleted from the journal this long after their block,
#: together with those of the blocks in between.
FORGET_DELAY_SECONDS = 0.5


class PrivateBlockSource(Protocol):
    """Where the node gets the private half of a block (``quorum_node.privacy``)."""

    async def for_block(
        self, transactions: Sequence[SignedTransactionAPI], *, patient: bool
    ) -> PrivateBlock:
        """The private half of a block of ``transactions``, its payloads fetched from
        this node's manager. ``patient`` retries before giving up (import: the block
        must wait); otherwise one attempt (a builder can leave the transactions out).
        Raises ``PrivateDataUnavailable`` rather than guess "not a party"."""
        ...

    async def close(self) -> None: ...


class BlockListener(Protocol):
    def __call__(self, committed: CommittedBlock) -> None: ...


class EngineHooks(Protocol):
    """What the node tells its consensus engine (``consensus.base.ConsensusEngine``)."""

    def transaction_added(self, transaction: SignedTransactionAPI) -> None: ...

    def committed_head(self) -> int | None:
        """The number of the newest block the engine committed that this node knows of,
        if it can know it now; None when it cannot (not yet heard from a leader since it
        started, or not lately)."""
        ...

    async def stop(self) -> None: ...


@dataclass(frozen=True)
class _Admitted:
    transaction: SignedTransactionAPI
    sender: Address
    account: AccountView
    head_hash: bytes  # the head whose state ``account`` was read from


@dataclass(frozen=True)
class _Submission:
    transaction: SignedTransactionAPI
    #: Sent by this node's own client (journaled before the answer), not forwarded.
    local: bool
    answer: asyncio.Future[_Admitted]


class Node:
    def __init__(
        self,
        chain: ChainService,
        accounts: AccountStore,
        coinbase: bytes,
        private_blocks: PrivateBlockSource | None = None,
        local_transactions: LocalTransactions | None = None,
    ) -> None:
        self.chain = chain
        #: Where sends this node acknowledged are kept until mined (None: not kept).
        self.local_transactions = local_transactions
        self.private_blocks = private_blocks
        self.accounts = accounts
        self.coinbase = coinbase
        self.executor = ChainExecutor()
        self._records: CoalescedReads[bytes, TransactionRecord | None] = CoalescedReads(
            self.executor, chain.record
        )
        self.pool = TransactionPool()
        self.engine: EngineHooks | None = None
        self.block_listeners: list[BlockListener] = []
        self.pending_listeners: list[Callable[[Hash32], None]] = []
        self._admission_queue: list[_Submission] = []
        self._admission_scheduled = False
        #: Set (and replaced) whenever a block commits here: what a send that waits for
        #: this node to catch up waits on.
        self._head_moved = asyncio.Event()
        self._forget_scheduled = False
        self._log = ThrottledLog(logger)
        #: Set once the journal's transactions are back in the pool after a start (at
        #: once without a journal): no send chooses a nonce before, or it could take the
        #: nonce of a transaction acknowledged before the restart.
        self._replayed = asyncio.Event()
        if local_transactions is None:
            self._replayed.set()

    @property
    def transaction_builder(self) -> type:
        return QuorumVM.get_transaction_builder()  # type: ignore[no-any-return]

    @property
    def head(self) -> BlockHeaderAPI:
        return self.chain.head

    async def record(self, transaction_hash: bytes) -> TransactionRecord | None:
        """What a committed transaction did as this node sees it (``ChainService.record``),
        read on the chain thread together with the other lookups of this loop turn."""
        return await self._records.get(transaction_hash)

    @property
    def chain_id(self) -> int:
        return self.chain.chain_id

    @property
    def genesis_hash(self) -> bytes:
        return bytes(self.chain.genesis_hash)

    # --- transactions in -----------------------------------------------------------

    def decode_raw_transaction(self, raw: bytes) -> SignedTransactionAPI:
        if len(raw) > MAX_TRANSACTION_BYTES:
            raise TransactionRejected("oversized data")
        try:
            transaction: SignedTransactionAPI = self.transaction_builder.decode(raw)  # type: ignore[attr-defined]
        except Exception as exc:  # rlp and py-evm raise a variety of decoding errors
            raise TransactionRejected(f"rlp: invalid transaction: {exc}") from None
        take_hash_from_wire(transaction, raw)
        return transaction

    async def until_current(self, timeout: float | None = None) -> None:
        """Return once this node's head is the newest block its engine committed, and the
        transactions it acknowledged before a restart are back in its pool, so that a
        nonce it chooses or checks now is not one already used; ``NodeCatchingUp`` after
        ``timeout`` (a node that just started, or one cut off from the leader)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (CATCH_UP_SECONDS if timeout is None else timeout)
        if not self._replayed.is_set():
            try:
                await asyncio.wait_for(self._replayed.wait(), deadline - loop.time())
            except TimeoutError:
                committed = self.engine.committed_head() if self.engine is not None else None
                raise NodeCatchingUp(self.chain.head.block_number, committed) from None
        await self._until_head_current(deadline)

    async def _until_head_current(self, deadline: float) -> None:
        """Wait until the head reaches the committed head as it was when first known:
        blocks committed after that are concurrent with the send (under load a follower
        is always a block or two behind the newest; chasing it would never end)."""
        if self.engine is None:
            return
        loop = asyncio.get_running_loop()
        target: int | None = None
        while True:
            if target is None:
                target = self.engine.committed_head()
            head = self.chain.head.block_number
            if target is not None and head >= target:
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise NodeCatchingUp(head, target)
            moved = self._head_moved
            try:
                await asyncio.wait_for(moved.wait(), min(remaining, CATCH_UP_RECHECK_SECONDS))
            except TimeoutError:
                pass

    async def submit(self, transaction: SignedTransactionAPI, *, local: bool = True) -> Hash32:
        """Check ``transaction`` against the head state and add it to the pool.

        A ``local`` transaction (sent by this node's client, not forwarded by a peer)
        waits until this node is current (``until_current``) and is journaled before this
        returns (``local_transactions``). Checks of many concurrent submissions run in one
        trip to the chain thread, with one journal commit for all of them.
        """
        return await self._submit(transaction, local=local, wait_current=local)

    async def _submit(
        self, transaction: SignedTransactionAPI, *, local: bool, wait_current: bool
    ) -> Hash32:
        """``submit``; the journal's replay passes ``wait_current=False``: it waited for
        the head itself, and sends sooner are what wait for it."""
        if wait_current:
            await self.until_current()
        admitted = await self._admit(transaction, local)
        if admitted.head_hash != self.chain.head.hash:
            # A block committed between the check and now: its nonces may make the
            # account view stale, so look again rather than re-admit an included nonce.
            admitted = await self._admit(transaction, local)
        try:
            self.pool.add(admitted.transaction, admitted.sender, admitted.account)
        except TransactionRejected:
            if local and self.local_transactions is not None:
                # Not acknowledged: it must not come back after a restart either.
                await self.executor.run(self.local_transactions.forget, [transaction.hash])
            raise
        transaction_hash = Hash32(transaction.hash)
        for listener in self.pending_listeners:
            listener(transaction_hash)
        if self.engine is not None:
            self.engine.transaction_added(admitted.transaction)
        return transaction_hash

    async def _admit(self, transaction: SignedTransactionAPI, local: bool) -> _Admitted:
        future: asyncio.Future[_Admitted] = asyncio.get_running_loop().create_future()
        self._admission_queue.append(_Submission(transaction, local, future))
        if not self._admission_scheduled:
            self._admission_scheduled = True
            asyncio.get_running_loop().call_soon(self._schedule_admission)
        return await future

    def _schedule_admission(self) -> None:
        asyncio.ensure_future(self._admit_queued())

    async def _admit_queued(self) -> None:
        """Check every queued submission in one trip to the chain thread and answer
        each; whatever goes wrong, every waiting send gets an answer (an unexpected error
        becomes -32603 at the RPC edge, logged there), never silence."""
        queued, self._admission_queue = self._admission_queue, []
        self._admission_scheduled = False
        outcomes: list[_Admitted | Exception] = [RuntimeError("admission was interrupted")] * len(
            queued
        )
        try:
            outcomes = await self.executor.run(self._check_all, queued)
        except Exception as exc:
            outcomes = [exc] * len(queued)
        finally:
            for submission, outcome in zip(queued, outcomes, strict=True):
                if submission.answer.done():
                    continue
                if isinstance(outcome, Exception):
                    submission.answer.set_exception(outcome)
                else:
                    submission.answer.set_result(outcome)

    def _check_all(self, submissions: list[_Submission]) -> list[_Admitted | Exception]:
        """The checks of every queued submission; then the local ones that passed are
        journaled in one commit (if that fails, none of them is admitted)."""
        state = self.chain.head_state()
        head_hash = self.chain.head.hash
        outcomes: list[_Admitted | Exception] = []
        to_keep: dict[bytes, bytes] = {}
        for submission in submissions:
            transaction = submission.transaction
            try:
                sender = self._check_transaction(transaction)
                account = AccountView(state.get_nonce(sender), state.get_balance(sender))
                outcomes.append(_Admitted(transaction, sender, account, head_hash))
                if submission.local:
                    to_keep[bytes(transaction.hash)] = transaction.encode()
            except Exception as exc:  # TransactionRejected, or a fault: answered either way
                outcomes.append(exc)
        if to_keep and self.local_transactions is not None:
            try:
                self.local_transactions.keep(to_keep)
            except Exception as exc:
                return [
                    exc
                    if isinstance(outcome, _Admitted) and outcome.transaction.hash in to_keep
                    else outcome
                    for outcome in outcomes
                ]
        return outcomes

    def _check_transaction(self, transaction: SignedTransactionAPI) -> Address:
        """The stateless checks geth runs before a transaction enters its pool."""
        if transaction.chain_id is not None and transaction.chain_id != self.chain.chain_id:
            raise TransactionRejected(
                f"invalid chain id for signer: have {transaction.chain_id} "
                f"want {self.chain.chain_id}"
            )
        if is_private(transaction):
            check_private_shape(transaction)
        if transaction.gas > self.chain.head.gas_limit:
            raise TransactionRejected("exceeds block gas limit")
        if transaction.max_priority_fee_per_gas > transaction.max_fee_per_gas:
            raise TransactionRejected("max priority fee per gas higher than max fee per gas")
        if transaction.gas < transaction.intrinsic_gas:
            raise TransactionRejected("intrinsic gas too low")
        try:
            transaction.validate()
            return Address(transaction.sender)
        except ValidationError as exc:
            message = str(exc)
            if "gas" in message.lower() and "insufficient" in message.lower():
                raise TransactionRejected("intrinsic gas too low") from None
            raise TransactionRejected(f"invalid sender: {message}") from None
        except Exception as exc:  # signature recovery raises BadSignature and friends
            raise TransactionRejected(f"invalid sender: {exc}") from None

    # --- blocks out ----------------------------------------------------------------

    def has_executable_transactions(self) -> bool:
        return self.pool.has_executable()

    async def produce_block(self, *, allow_empty: bool) -> CommittedBlock | None:
        """Build and commit a block at once: the solo engine's whole job."""
        chosen = await self._block_candidates(allow_empty, None)
        if chosen is None:
            return None
        candidates, private = chosen
        committed = await self.executor.run(
            self.chain.seal_block,
            candidates,
            timestamp=int(time.time()),
            coinbase=self.coinbase,
            private=private,
        )
        self.on_committed(committed)
        return committed

    async def prepare_block(
        self, *, allow_empty: bool, max_transactions: int | None = None
    ) -> PreparedBlock | None:
        """Build a block to propose; nothing is committed until ``commit_prepared``.

        ``max_transactions`` caps the block (a prefix of the pool's executable order is
        still executable); the rest waits for the next block.
        """
        chosen = await self._block_candidates(allow_empty, max_transactions)
        if chosen is None:
            return None
        candidates, private = chosen
        prepared = await self.executor.run(
            self.chain.prepare_block,
            candidates,
            timestamp=int(time.time()),
            coinbase=self.coinbase,
            private=private,
        )
        if prepared.built.rejected:
            self.pool.remove([transaction for transaction, _ in prepared.built.rejected])
        return prepared

    async def commit_prepared(self, prepared: PreparedBlock) -> CommittedBlock:
        committed = await self.executor.run(self.chain.commit_prepared, prepared)
        self.on_committed(committed)
        return committed

    async def import_block(self, block: BlockAPI) -> CommittedBlock:
        """Execute and commit a block another node made (re-execution checks it)."""
        for transaction in block.transactions:
            admitted = self.pool.lookup(transaction.hash)
            if admitted is not None:  # the same bytes, already validated at admission
                mark_validated(transaction, admitted[1])
        private = await self._private_half(block.transactions, patient=True)
        committed = await self.executor.run(self.chain.import_block, block, private)
        self.on_committed(committed)
        return committed

    async def decode_blocks(self, encoded_blocks: Sequence[bytes]) -> list[BlockAPI]:
        """Decode blocks from the wire on the chain thread, not the event loop (a block of
        500 transactions takes tens of milliseconds). Raises ``ChainError``."""
        return await self.executor.run(lambda: [decode_block(item) for item in encoded_blocks])

    async def encoded_blocks(self, start: int, count: int) -> list[bytes]:
        """Canonical blocks ``start``.. (at most ``count``) as the wire carries them."""

        def read() -> list[bytes]:
            encoded = []
            for number in range(start, start + count):
                header = self.chain.header_by_number(number)
                if header is None:
                    break
                encoded.append(encode_block(self.chain.block_of(header)))
            return encoded

        return await self.executor.run(read)

    async def admit_forwarded(self, raw_transactions: Sequence[bytes]) -> int:
        """Admit transactions another node forwarded; how many entered the pool. Bytes
        that are no transaction raise ``TransactionRejected`` naming the index."""
        transactions = []
        for index, raw in enumerate(raw_transactions):
            try:
                transactions.append(self.decode_raw_transaction(raw))
            except TransactionRejected as exc:
                raise TransactionRejected(f"transactions[{index}]: {exc}") from None
        outcomes = await asyncio.gather(
            *(self.submit(transaction, local=False) for transaction in transactions),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                logger.debug("forwarded transaction not admitted: %s", outcome)
        return sum(1 for outcome in outcomes if not isinstance(outcome, BaseException))

    def waiting_transactions(self) -> list[SignedTransactionAPI]:
        return self.pool.waiting()

    def is_waiting(self, transaction_hash: bytes) -> bool:
        return transaction_hash in self.pool

    async def _private_half(
        self, transactions: Sequence[SignedTransactionAPI], *, patient: bool
    ) -> PrivateBlock | None:
        if self.private_blocks is None:
            return None
        return await self.private_blocks.for_block(transactions, patient=patient)

    async def _block_candidates(
        self, allow_empty: bool, max_transactions: int | None
    ) -> tuple[list[SignedTransactionAPI], PrivateBlock | None] | None:
        """What the next block this node builds should execute, with its private half;
        None when there is nothing to put in it and an empty block is not wanted."""
        candidates = self.pool.executable(
            max_gas=self.chain.head.gas_limit, max_count=max_transactions
        )
        if not candidates and not allow_empty:
            return None
        candidates, private = await self._private_half_for_building(candidates)
        if not candidates and not allow_empty:
            return None
        return candidates, private

    async def _private_half_for_building(
        self, candidates: list[SignedTransactionAPI]
    ) -> tuple[list[SignedTransactionAPI], PrivateBlock | None]:
        """The private half of a block this node builds, or, if its manager does not
        answer at once, a block without private transactions.

        The block maker cannot leave a private transaction's outcome unknown to itself,
        but it need not stop the chain either: public transactions go on, and private
        ones (with their senders' later transactions, which depend on their nonces)
        wait in the pool until the manager is back.
        """
        try:
            return candidates, await self._private_half(candidates, patient=False)
        except PrivateDataUnavailable as exc:
            self._log.warning(
                "building without private", "building without private transactions: %s", exc
            )
        held_back: set[bytes] = set()
        public_only = []
        for transaction in candidates:
            sender = bytes(transaction.sender)
            if sender in held_back or is_private(transaction):
                held_back.add(sender)
                continue
            public_only.append(transaction)
        return public_only, await self._private_half(public_only, patient=False)

    def on_committed(self, committed: CommittedBlock) -> None:
        """Update the pool and tell listeners; runs on the event loop."""
        self.pool.remove_included(
            (transaction, record.sender)
            for transaction, record in zip(
                committed.block.transactions, committed.records, strict=True
            )
        )
        if committed.rejected:
            for transaction, reason in committed.rejected:
                logger.info("dropped %s: %s", encode_hex(transaction.hash), reason)
            self.pool.remove([transaction for transaction, _ in committed.rejected])
        logger.debug(
            "block #%d with %d transactions", committed.block.number, len(committed.records)
        )
        self._head_moved.set()
        self._head_moved = asyncio.Event()
        journal = self.local_transactions
        if journal is not None and journal.forget_later(
            transaction.hash for transaction in committed.block.transactions
        ):
            self._schedule_forget()
        for listener in self.block_listeners:
            try:
                listener(committed)
            except Exception:
                logger.exception("a block listener failed")

    def _schedule_forget(self) -> None:
        """Delete mined transactions from the journal soon, once for many blocks."""
        if self._forget_scheduled or self.local_transactions is None:
            return
        self._forget_scheduled = True
        journal = self.local_transactions

        async def flush() -> None:
            await asyncio.sleep(FORGET_DELAY_SECONDS)
            self._forget_scheduled = False
            try:
                await self.executor.run(journal.flush)
            except Exception as exc:  # the next flush, or the replay at start, retries
                self._log.warning("journal", "could not forget mined local transactions: %s", exc)

        asyncio.ensure_future(flush())

    async def replay_local_transactions(self) -> None:
        """After a start: send again every journaled transaction not yet mined, once this
        node is current; forget those mined, or whose nonce another transaction took."""
        try:
            await self._replay_local_transactions()
        finally:
            self._replayed.set()

    async def _replay_local_transactions(self) -> None:
        journal = self.local_transactions
        if journal is None:
            return
        kept = await self.executor.run(journal.load)
        if not kept:
            return
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self._until_head_current(loop.time() + CATCH_UP_SECONDS)
                break
            except NodeCatchingUp as exc:
                self._log.info("replay", "local transactions wait: %s", exc)
        transactions = []
        for raw in kept.values():
            try:
                transactions.append(self.decode_raw_transaction(raw))
            except TransactionRejected:
                continue
        transactions.sort(key=lambda transaction: (bytes(transaction.sender), transaction.nonce))
        sent = mined = dropped = 0
        finished: list[bytes] = []
        for transaction in transactions:
            if await self.record(transaction.hash) is not None:
                mined += 1
                finished.append(transaction.hash)
                continue
            try:
                await self._submit(transaction, local=True, wait_current=False)
                sent += 1
            except TransactionRejected as exc:
                if "already known" in str(exc):
                    sent += 1
                    continue
                dropped += 1
                finished.append(transaction.hash)
                logger.info("journaled %s not sent again: %s", encode_hex(transaction.hash), exc)
        await self.executor.run(journal.forget, finished)
        logger.info(
            "local transactions after the restart: %d sent again, %d mined already, %d dropped",
            sent,
            mined,
            dropped,
        )

    async def close(self) -> None:
        if self.engine is not None:
            await self.engine.stop()
        if self.private_blocks is not None:
            await self.private_blocks.close()
        self.executor.shutdown()
