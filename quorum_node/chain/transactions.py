"""Transaction types of a quorum-py chain: py-evm's Prague set plus GoQuorum's private
transaction.

A private transaction is a legacy transaction whose ``data`` is the 64-byte hash of a
payload held by the transaction managers, signed without EIP-155 (the Homestead signing
hash) and marked with v = 37 or 38 instead of 27 or 28. Stock py-evm would read v = 37
as an EIP-155 signature for chain 1 and recover the wrong sender, so the chain's
transaction builder decodes legacy transactions into ``QuorumLegacyTransaction``, which
knows the marker.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import rlp
from eth.abc import SignedTransactionAPI
from eth.constants import CREATE_CONTRACT_ADDRESS
from eth.vm.forks.prague.blocks import PragueBlock, PragueBlockHeader
from eth.vm.forks.prague.transactions import (
    PragueLegacyTransaction,
    PragueTransactionBuilder,
    PragueTypedTransaction,
    PragueUnsignedLegacyTransaction,
)
from eth.vm.forks.shanghai.withdrawals import Withdrawal
from eth.vm.forks.spurious_dragon.transactions import SpuriousDragonUnsignedTransaction
from eth_keys import keys
from eth_keys.datatypes import PrivateKey
from eth_keys.exceptions import BadSignature
from eth_typing import Address, Hash32
from eth_utils import ValidationError, keccak
from rlp.sedes import CountableList

from quorum_node.errors import TransactionRejected

PRIVATE_V_OFFSET = 10  # v = 27/28 + 10
PRIVATE_V_VALUES = (37, 38)
PRIVATE_PAYLOAD_HASH_SIZE = 64
#: The least gas a private transaction is given when it is filled in for the sender: its
#: public side costs only the intrinsic gas of the 64-byte hash, but the same gas limit
#: bounds the private execution of the payload.
PRIVATE_MIN_GAS = 60_000


def is_private(transaction: Any) -> bool:
    """True for GoQuorum's private marker (a legacy transaction with v = 37 or 38)."""
    return (
        getattr(transaction, "type_id", None) is None
        and getattr(transaction, "v", 0) in PRIVATE_V_VALUES
    )


class ValidatedOnce:
    """Remember on the object that ``validate()`` passed.

    ``validate()`` checks only the transaction's own fields (ranges, intrinsic gas, the
    signature), and a decoded transaction is immutable (rlp ``Serializable``; ``copy``
    makes a new object), so its outcome never changes. py-evm validates in the node's
    admission check and again when the block executes the transaction; each run
    recovers the public key from the signature (about a fifth of the chain thread's
    time for plain transfers). A failed validation is not remembered:
    it raises again every time.
    """

    def validate(self) -> None:
        if self.__dict__.get("_quorum_validated"):
            return
        super().validate()  # type: ignore[misc]
        self.__dict__["_quorum_validated"] = True

    def check_signature_validity(self) -> None:
        """py-evm's ``validate_transaction_signature``, with one elliptic-curve operation
        instead of three.

        Stock py-evm recovers the public key, verifies the signature against it, and
        later recovers the key again for ``sender``. A key recovered from a signature
        verifies that signature by construction (recovery computes the point that the
        verification equation checks), so the verification is left out, and the sender
        is kept from this recovery. Signature recovery was a tenth of a follower's CPU.
        Typed transactions check the signature on their inner payload, so this serves
        legacy (including private) transactions.
        """
        message = self.get_message_for_signing()  # type: ignore[attr-defined]
        signature = keys.Signature(vrs=(self.y_parity, self.r, self.s))  # type: ignore[attr-defined]
        try:
            public_key = signature.recover_public_key_from_msg(message)
        except BadSignature as exc:
            raise ValidationError(f"Bad Signature: {exc}") from None
        self.__dict__.setdefault("sender", public_key.to_canonical_address())


def mark_validated(transaction: SignedTransactionAPI, sender: bytes) -> None:
    """Record on a freshly decoded ``transaction`` that a copy with the same bytes (the
    same hash) already passed ``validate()`` here with ``sender``: a follower imports
    blocks holding transactions its own pool admitted, and need not recover their
    signatures again."""
    if isinstance(transaction, ValidatedOnce):
        transaction.__dict__["_quorum_validated"] = True
        transaction.__dict__.setdefault("sender", sender)


def private_payload_hashes(transactions: Iterable[Any]) -> list[bytes]:
    """The manager hashes that ``transactions``' private members carry, in order."""
    return [bytes(transaction.data) for transaction in transactions if is_private(transaction)]


def check_private_shape(transaction: SignedTransactionAPI) -> None:
    """What every private transaction must look like before it enters the pool."""
    if not is_private(transaction):
        raise TransactionRejected("transaction is not private")
    if transaction.value:
        raise TransactionRejected("ether value is not supported for private transactions")
    if len(transaction.data) != PRIVATE_PAYLOAD_HASH_SIZE:
        raise TransactionRejected(
            "private transaction data must be the manager's 64-byte payload hash"
        )


def private_gas_limit(estimate: int) -> int:
    """The gas to give a private transaction whose payload was estimated at ``estimate``.

    The estimate runs the payload on the group's private state at the head; a margin
    covers state that moves before the block executes it, as web3js-quorum adds one.
    """
    return max(estimate * 11 // 10 + 25_000, PRIVATE_MIN_GAS)


def homestead_signing_message(transaction: Any) -> bytes:
    """What a private transaction's signature covers: the legacy fields, no chain id."""
    return bytes(
        rlp.encode(
            SpuriousDragonUnsignedTransaction(
                nonce=transaction.nonce,
                gas_price=transaction.gas_price,
                gas=transaction.gas,
                to=transaction.to,
                value=transaction.value,
                data=transaction.data,
            )
        )
    )


class QuorumLegacyTransaction(ValidatedOnce, PragueLegacyTransaction):  # type: ignore[misc]
    """A legacy transaction that may carry the private marker."""

    @property
    def is_private(self) -> bool:
        return self.v in PRIVATE_V_VALUES

    @property
    def y_parity(self) -> int:
        if self.is_private:
            return int(self.v - PRIVATE_V_OFFSET - 27)
        return int(super().y_parity)

    @property
    def chain_id(self) -> int | None:
        return None if self.is_private else super().chain_id

    @property
    def v_min(self) -> int:
        return PRIVATE_V_VALUES[0] if self.is_private else int(super().v_min)

    @property
    def v_max(self) -> int:
        return PRIVATE_V_VALUES[1] if self.is_private else int(super().v_max)

    def get_message_for_signing(self) -> bytes:
        if self.is_private:
            return homestead_signing_message(self)
        return bytes(super().get_message_for_signing())

    @property
    def hash(self) -> Hash32:
        """The keccak of the encoding, computed once per object (py-evm's legacy
        transaction computes it at every read; its typed one already caches it).

        The object is immutable (``copy`` makes a new one), so the hash cannot go stale.
        A node reads it at admission, in the pool, in the block's records and stored
        keys, and when the pool forgets included transactions: four to six keccaks of
        about 8 µs per transaction and node, against a builder's two."""
        cached: Hash32 | None = self.__dict__.get("_quorum_hash")
        if cached is None:
            cached = self.__dict__["_quorum_hash"] = Hash32(keccak(self.encode()))
        return cached


def take_hash_from_wire(transaction: SignedTransactionAPI, encoded: bytes) -> None:
    """Give a legacy transaction decoded from ``encoded`` its hash from those bytes.

    RLP decoding is strict (canonical lengths and integers only, nothing left over), so
    ``encoded`` is exactly what ``encode()`` would make again; hashing it spares the
    re-encoding, two thirds of a hash, once per transaction a node takes off the wire
    (a client's send, a forward, each transaction of a pushed block)."""
    if isinstance(transaction, QuorumLegacyTransaction):
        transaction.__dict__["_quorum_hash"] = Hash32(keccak(encoded))


class QuorumTypedTransaction(ValidatedOnce, PragueTypedTransaction):  # type: ignore[misc]
    pass


class QuorumTransactionBuilder(PragueTransactionBuilder):  # type: ignore[misc]
    legacy_signed = QuorumLegacyTransaction
    typed_transaction = QuorumTypedTransaction


class QuorumBlock(PragueBlock):  # type: ignore[misc]
    """Prague's block with the chain's transaction builder in its body codec."""

    transaction_builder = QuorumTransactionBuilder
    fields = [
        ("header", PragueBlockHeader),
        ("transactions", CountableList(QuorumTransactionBuilder)),
        ("uncles", CountableList(None, max_length=0)),
        ("withdrawals", CountableList(Withdrawal)),
    ]


def unsigned_private_transaction(
    *, nonce: int, gas: int, gas_price: int, to: bytes | None, payload_hash: bytes
) -> PragueUnsignedLegacyTransaction:
    """The transaction that carries a private payload's hash: no value, data = the hash.

    The one builder of private transactions, for the node (accounts it holds) and for
    offline signing (``web3_ext``); ``sign_private`` then marks it private.
    """
    # The builder's create_unsigned_transaction makes its legacy class, Prague's.
    return cast(
        PragueUnsignedLegacyTransaction,
        QuorumTransactionBuilder.create_unsigned_transaction(
            nonce=nonce,
            gas_price=gas_price,
            gas=gas,
            to=Address(to) if to is not None else CREATE_CONTRACT_ADDRESS,
            value=0,
            data=payload_hash,
        ),
    )


def sign_private(
    unsigned: PragueUnsignedLegacyTransaction | SpuriousDragonUnsignedTransaction,
    private_key: PrivateKey,
) -> SignedTransactionAPI:
    """Sign as GoQuorum and web3js-quorum do: Homestead hash, then v 27/28 → 37/38."""
    message = homestead_signing_message(unsigned)
    signature = private_key.sign_msg(message)
    v = signature.v + 27 + PRIVATE_V_OFFSET
    return QuorumLegacyTransaction(
        nonce=unsigned.nonce,
        gas_price=unsigned.gas_price,
        gas=unsigned.gas,
        to=unsigned.to,
        value=unsigned.value,
        data=unsigned.data,
        v=v,
        r=signature.r,
        s=signature.s,
    )
