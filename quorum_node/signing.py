"""Filling in and signing transactions for accounts the node holds.

``eth_sendTransaction`` from web3.py and ethers arrives without fee fields and often
without gas or nonce; the node fills them as geth does (``sending``): nonce from the
pool's pending count, gas by estimation, and EIP-1559 fees at the suggested tip (0 on a
free-gas network). A request that names ``gasPrice`` gets a legacy (or EIP-2930)
transaction; one with an ``authorizationList`` gets an EIP-7702 set-code transaction.
"""

from __future__ import annotations

from typing import cast

from eth.abc import SignedTransactionAPI
from eth.constants import CREATE_CONTRACT_ADDRESS
from eth_keys.datatypes import PrivateKey

from quorum_node.chain.transactions import QuorumTransactionBuilder
from quorum_node.chain.vm import QuorumVM
from quorum_node.errors import InvalidTransactionRequest
from quorum_node.transaction_request import TransactionRequest

SUGGESTED_TIP = 0


def sign_request(
    request: TransactionRequest,
    *,
    private_key: PrivateKey,
    chain_id: int,
    nonce: int,
    gas: int,
    base_fee: int = 0,
) -> SignedTransactionAPI:
    # The concrete builder: TransactionBuilderAPI lacks the typed-transaction constructors.
    builder = cast(type[QuorumTransactionBuilder], QuorumVM.get_transaction_builder())
    to = request.to if request.to is not None else CREATE_CONTRACT_ADDRESS
    if request.chain_id is not None and request.chain_id != chain_id:
        raise InvalidTransactionRequest(
            f"chainId {request.chain_id} does not match the node's {chain_id}"
        )
    wants_legacy = request.gas_price is not None or request.transaction_type in (0, 1)
    if wants_legacy and request.authorizations is not None:
        raise InvalidTransactionRequest(
            "a set code transaction (authorizationList) cannot use gasPrice"
        )
    if wants_legacy:
        if request.max_fee_per_gas is not None or request.max_priority_fee_per_gas is not None:
            raise InvalidTransactionRequest(
                "both gasPrice and (maxFeePerGas or maxPriorityFeePerGas) specified"
            )
        gas_price = request.gas_price or 0
        if request.access_list is not None or request.transaction_type == 1:
            unsigned = builder.new_unsigned_access_list_transaction(
                chain_id,
                nonce,
                gas_price,
                gas,
                to,
                request.value,
                request.data,
                request.access_list or (),
            )
            return _canonical(unsigned.as_signed_transaction(private_key))
        return builder.create_unsigned_transaction(
            nonce=nonce, gas_price=gas_price, gas=gas, to=to, value=request.value, data=request.data
        ).as_signed_transaction(private_key, chain_id=chain_id)
    tip = request.max_priority_fee_per_gas
    fee_cap = request.max_fee_per_gas
    if tip is None:
        tip = SUGGESTED_TIP if fee_cap is None else min(SUGGESTED_TIP, fee_cap)
    if fee_cap is None:
        fee_cap = 2 * base_fee + tip
    if tip > fee_cap:
        raise InvalidTransactionRequest("maxFeePerGas must be at least maxPriorityFeePerGas")
    if request.authorizations is not None:
        if request.to is None:
            raise InvalidTransactionRequest(
                'set code transaction: "to" is required (EIP-7702 cannot create)'
            )
        unsigned = builder.new_unsigned_set_code_transaction(
            chain_id,
            nonce,
            tip,
            fee_cap,
            gas,
            to,
            request.value,
            request.data,
            request.access_list or (),
            [
                {
                    "chain_id": auth.chain_id,
                    "address": auth.address,
                    "nonce": auth.nonce,
                    "y_parity": auth.y_parity,
                    "r": auth.r,
                    "s": auth.s,
                }
                for auth in request.authorizations
            ],
        )
        return _canonical(unsigned.as_signed_transaction(private_key))
    unsigned = builder.new_unsigned_dynamic_fee_transaction(
        chain_id,
        nonce,
        tip,
        fee_cap,
        gas,
        to,
        request.value,
        request.data,
        request.access_list or (),
    )
    return _canonical(unsigned.as_signed_transaction(private_key))


def _canonical(transaction: SignedTransactionAPI) -> SignedTransactionAPI:
    """Re-decode with the chain's own builder, so the object is the fork's typed class."""
    return QuorumVM.get_transaction_builder().decode(transaction.encode())  # type: ignore[no-any-return]
