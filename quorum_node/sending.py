"""Sending transactions for the accounts this node holds, one nonce at a time per account.

geth holds a per-account lock across "read the pending nonce, sign, add to the pool", so
concurrent ``eth_sendTransaction`` calls from one account get consecutive nonces in the
order they arrived instead of colliding ("replacement transaction underpriced").
``NonceReservations`` is that lock, and the only place a nonce is chosen for a held
account: public sends here, private sends in ``privacy.service`` (which reserves the
nonce before its payload goes to any manager).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from eth.abc import SignedTransactionAPI
from eth_typing import Address, Hash32

from quorum_node.accounts import HeldAccount
from quorum_node.chain import calls
from quorum_node.errors import InvalidTransactionRequest, UnknownAccount
from quorum_node.node import Node
from quorum_node.signing import sign_request
from quorum_node.transaction_request import TransactionRequest


@dataclass
class _AccountLock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class NonceReservations:
    """Per-account locks under which a nonce is chosen and the transaction submitted."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self._locks: dict[Address, _AccountLock] = {}

    @asynccontextmanager
    async def reserve(self, sender: Address, requested: int | None) -> AsyncIterator[int]:
        """Hold ``sender``'s lock and yield the nonce its next transaction takes: the one
        ``requested``, or the pool's pending nonce, once the node is current (a nonce
        chosen on a stale head could be one already used: ``Node.until_current``). The
        caller submits the transaction before leaving the block, so the next holder sees
        it in the pool."""
        entry = self._locks.setdefault(sender, _AccountLock())
        entry.users += 1
        try:
            async with entry.lock:
                if requested is not None:
                    yield requested
                else:
                    await self._node.until_current()
                    yield await self.pending_nonce(sender)
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._locks[sender]

    async def pending_nonce(self, sender: Address) -> int:
        node = self._node
        state_nonce = await node.executor.run(lambda: node.chain.head_state().get_nonce(sender))
        return node.pool.pending_nonce(sender, state_nonce)


class TransactionSender:
    """Fills in, signs and submits public transactions for the node's accounts."""

    def __init__(self, node: Node, nonces: NonceReservations) -> None:
        self._node = node
        self.nonces = nonces

    def account(self, sender: Address | None) -> HeldAccount:
        if sender is None:
            raise InvalidTransactionRequest('transaction: "from" is required')
        account = self._node.accounts.get(sender)
        if account is None:
            raise UnknownAccount()
        return account

    async def send(self, request: TransactionRequest) -> Hash32:
        """``eth_sendTransaction`` of a public transaction: reserve, fill, sign, submit."""
        account = self.account(request.sender)
        async with self.nonces.reserve(account.address, request.nonce) as nonce:
            transaction = await self._sign(request, account, nonce)
            return await self._node.submit(transaction)

    async def sign(self, request: TransactionRequest) -> SignedTransactionAPI:
        """``eth_signTransaction``: fill and sign without submitting (no reservation:
        nothing enters the pool, as in geth)."""
        account = self.account(request.sender)
        nonce = request.nonce
        if nonce is None:
            nonce = await self.nonces.pending_nonce(account.address)
        return await self._sign(request, account, nonce)

    async def _sign(
        self, request: TransactionRequest, account: HeldAccount, nonce: int
    ) -> SignedTransactionAPI:
        node = self._node
        gas = request.gas
        if gas is None:
            gas = await node.executor.run(
                lambda: calls.estimate_gas(
                    calls.PublicCalls(node.chain, node.chain.head), request.as_call()
                )
            )
        return sign_request(
            request,
            private_key=account.private_key,
            chain_id=node.chain.chain_id,
            nonce=nonce,
            gas=gas,
        )
