"""Sending a private transaction: steps 1 to 3 of ARCHITECTURE.md.

The node hands the payload to its manager (``/send``, or ``/sendsignedtx`` for a
transaction signed offline over a ``/storeraw`` hash), takes back the 64-byte hash,
and submits a public transaction whose data is that hash, signed as GoQuorum signs
private transactions (Homestead hash, v = 37/38). If the manager refuses (an unknown
or unreachable recipient) nothing is submitted and the error names the key.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from eth.abc import SignedTransactionAPI
from eth.constants import CREATE_CONTRACT_ADDRESS
from eth.vm.forks.prague.transactions import PragueUnsignedLegacyTransaction
from eth_keys.datatypes import PrivateKey
from eth_typing import Address

from quorum_node.chain.transactions import (
    PRIVATE_PAYLOAD_HASH_SIZE,
    QuorumTransactionBuilder,
    is_private,
    sign_private,
)
from quorum_node.errors import QuorumNodeError
from tx_manager.client import ClientError, Q2TClient
from tx_manager.payload import privacy_group_id

SUPPORTED_PRIVACY_FLAGS = (0,)


class PrivacyError(QuorumNodeError):
    """A private transaction cannot be sent as asked (mapped to JSON-RPC -32000)."""


class InvalidPrivacyParams(QuorumNodeError):
    """privateFor, privateFrom or privacyFlag are malformed (mapped to -32602)."""


@dataclass(frozen=True)
class PrivacyParams:
    private_for: tuple[str, ...]
    private_from: str | None
    privacy_flag: int

    def group_id(self, default_from: str) -> bytes:
        parties = [self.private_from or default_from, *self.private_for]
        return privacy_group_id([base64.b64decode(key) for key in parties])


def _manager_key(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidPrivacyParams(f"{what}: expected a base64 manager public key")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidPrivacyParams(f"{what}: {value!r} is not base64") from None
    if len(raw) != 32:
        raise InvalidPrivacyParams(f"{what}: {value!r} is not a 32-byte key")
    return value


def parse_privacy(fields: dict[str, Any] | None) -> PrivacyParams | None:
    """The privacy fields of a transaction request, or None for a public transaction.

    As in GoQuorum, the presence of ``privateFor`` (even empty) makes it private.
    """
    if not fields or "privateFor" not in fields:
        if fields and ("privateFrom" in fields or "privacyFlag" in fields):
            raise InvalidPrivacyParams("privateFrom and privacyFlag need privateFor")
        return None
    private_for = fields["privateFor"]
    if not isinstance(private_for, list):
        raise InvalidPrivacyParams("privateFor: expected a list of base64 manager keys")
    flag = fields.get("privacyFlag", 0)
    if not isinstance(flag, int) or isinstance(flag, bool):
        raise InvalidPrivacyParams("privacyFlag: expected a number")
    if flag not in SUPPORTED_PRIVACY_FLAGS:
        raise InvalidPrivacyParams(
            f"privacyFlag {flag} is not supported yet: only 0 (standard private) is"
        )
    private_from = fields.get("privateFrom")
    return PrivacyParams(
        private_for=tuple(_manager_key(k, f"privateFor[{i}]") for i, k in enumerate(private_for)),
        private_from=None if private_from is None else _manager_key(private_from, "privateFrom"),
        privacy_flag=flag,
    )


class PrivateSender:
    """Talks to the node's manager for sending; the node signs and submits."""

    def __init__(self, client: Q2TClient | None) -> None:
        self._client = client
        self._default_key: str | None = None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()

    def _require(self) -> Q2TClient:
        if self._client is None:
            raise PrivacyError("this node has no transaction manager: private transactions are off")
        return self._client

    async def default_key(self) -> str:
        """The manager's first key: privateFrom when a request leaves it out."""
        if self._default_key is None:
            try:
                keys_held = await self._require().keys()
            except ClientError as exc:
                raise PrivacyError(f"transaction manager unavailable: {exc}") from None
            if not keys_held:
                raise PrivacyError("the transaction manager holds no key")
            self._default_key = keys_held[0]
        return self._default_key

    async def distribute(self, payload: bytes, privacy: PrivacyParams) -> bytes:
        """Encrypt, store and push ``payload`` to the parties; the 64-byte hash."""
        try:
            result = await self._require().send(
                payload, privacy.private_from, list(privacy.private_for), privacy.privacy_flag
            )
        except ClientError as exc:
            raise PrivacyError(f"transaction manager refused the private payload: {exc}") from None
        return bytes(result.key)

    async def distribute_signed(self, payload_hash: bytes, privacy: PrivacyParams) -> None:
        try:
            await self._require().send_signed_tx(
                payload_hash, list(privacy.private_for), privacy.privacy_flag
            )
        except ClientError as exc:
            raise PrivacyError(f"transaction manager refused to distribute: {exc}") from None

    async def payload(self, payload_hash: bytes) -> bytes | None:
        try:
            received = await self._require().receive(payload_hash)
        except ClientError as exc:
            raise PrivacyError(f"transaction manager unavailable: {exc}") from None
        return None if received is None else bytes(received.payload)


def build_private_transaction(
    *,
    private_key: PrivateKey,
    nonce: int,
    gas: int,
    gas_price: int,
    to: bytes | None,
    payload_hash: bytes,
) -> SignedTransactionAPI:
    # The builder's create_unsigned_transaction makes its legacy class, Prague's.
    unsigned = cast(
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
    return sign_private(unsigned, private_key)


def check_private_shape(transaction: SignedTransactionAPI) -> None:
    """What every private transaction must look like before it enters the pool."""
    if not is_private(transaction):
        raise PrivacyError("transaction is not private")
    if transaction.value:
        raise PrivacyError("ether value is not supported for private transactions")
    if len(transaction.data) != PRIVATE_PAYLOAD_HASH_SIZE:
        raise PrivacyError("private transaction data must be the manager's 64-byte payload hash")


def parties_text(keys_b64: Sequence[str]) -> str:
    return ", ".join(sorted(keys_b64))
