"""A transaction as a client asks for it: the object of eth_sendTransaction, eth_call and
eth_estimateGas, parsed from JSON by ``rpc.params`` and used by the layers below.

Fields the client left out are None; the node fills them as geth does (``sending``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_typing import Address

from quorum_node.chain.calls import Call

ZERO_ADDRESS = Address(b"\x00" * 20)


@dataclass(frozen=True)
class SignedAuthorization:
    """One entry of an EIP-7702 ``authorizationList``: the account that signed it lets
    its code delegate to ``address``."""

    chain_id: int
    address: Address
    nonce: int
    y_parity: int
    r: int
    s: int


@dataclass(frozen=True)
class TransactionRequest:
    """The transaction-like object of eth_call, eth_estimateGas and eth_sendTransaction."""

    sender: Address | None = None
    to: Address | None = None
    gas: int | None = None
    gas_price: int | None = None
    max_fee_per_gas: int | None = None
    max_priority_fee_per_gas: int | None = None
    value: int = 0
    data: bytes = b""
    nonce: int | None = None
    access_list: tuple[tuple[Address, tuple[int, ...]], ...] | None = None
    transaction_type: int | None = None
    chain_id: int | None = None
    authorizations: tuple[SignedAuthorization, ...] | None = None
    extra: dict[str, Any] | None = None  # fields beyond Ethereum's (Quorum's privateFor, ...)

    def as_call(self) -> Call:
        """The request as an unsigned call (a missing sender calls from address zero)."""
        return Call(
            sender=self.sender or ZERO_ADDRESS,
            to=self.to,
            value=self.value,
            data=self.data,
            gas=self.gas,
            access_list=self.access_list,
        )
