"""Filling in and signing transactions for accounts the node holds.

``eth_sendTransaction`` from web3.py and ethers arrives without fee fields and often
without gas or nonce; the node fills them as geth does: nonce from the pool's pending
count, gas by estimation, and EIP-1559 fees at the suggested tip (0 on a free-gas
network). A request that names ``gasPrice`` gets a legacy (or EIP-2930) transaction.
"""

from __future__ import annotations

from eth.abc import SignedTransactionAPI
from eth.constants import CREATE_CONTRACT_ADDRESS
from eth_keys import keys

from quorum_node.chain.vm import QuorumVM
from quorum_node.rpc.errors import InvalidParams
from quorum_node.rpc.params import CallRequest

SUGGESTED_TIP = 0


def sign_request(
    request: CallRequest,
    *,
    private_key: keys.PrivateKey,
    chain_id: int,
    nonce: int,
    gas: int,
    base_fee: int = 0,
) -> SignedTransactionAPI:
    builder = QuorumVM.get_transaction_builder()
    to = request.to if request.to is not None else CREATE_CONTRACT_ADDRESS
    if request.chain_id is not None and request.chain_id != chain_id:
        raise InvalidParams(f"chainId {request.chain_id} does not match the node's {chain_id}")
    wants_legacy = request.gas_price is not None or request.transaction_type in (0, 1)
    if wants_legacy:
        if request.max_fee_per_gas is not None or request.max_priority_fee_per_gas is not None:
            raise InvalidParams("both gasPrice and (maxFeePerGas or maxPriorityFeePerGas) specified")
        gas_price = request.gas_price or 0
        if request.access_list is not None or request.transaction_type == 1:
            unsigned = builder.new_unsigned_access_list_transaction(
                chain_id, nonce, gas_price, gas, to, request.value, request.data,
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
        raise InvalidParams("maxFeePerGas must be at least maxPriorityFeePerGas")
    unsigned = builder.new_unsigned_dynamic_fee_transaction(
        chain_id, nonce, tip, fee_cap, gas, to, request.value, request.data,
        request.access_list or (),
    )
    return _canonical(unsigned.as_signed_transaction(private_key))


def _canonical(transaction: SignedTransactionAPI) -> SignedTransactionAPI:
    """Re-decode with the chain's own builder, so the object is the fork's typed class."""
    return QuorumVM.get_transaction_builder().decode(transaction.encode())  # type: ignore[no-any-return]
