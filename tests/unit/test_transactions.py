"""The chain's transaction classes remember work on the object (``hash``, a validation
that passed); what they remember must always be what py-evm would compute again."""

from __future__ import annotations

import pytest
from eth.abc import SignedTransactionAPI
from eth_utils import keccak

from quorum_node.chain.transactions import QuorumLegacyTransaction
from quorum_node.chain.vm import QuorumVM
from tests.support.inproc import KEYS, private_transaction, transfer

pytestmark = pytest.mark.timeout(20)

BUILDER = QuorumVM.get_transaction_builder()


@pytest.mark.parametrize(
    "transaction",
    [transfer(KEYS[0], 3), private_transaction(KEYS[1], 0, b"\x07" * 64)],
    ids=["public", "private"],
)
def test_the_hash_read_twice_and_after_a_copy_is_the_keccak_of_the_encoding(
    transaction: SignedTransactionAPI,
) -> None:
    decoded = BUILDER.decode(transaction.encode())
    assert isinstance(decoded, QuorumLegacyTransaction)

    assert decoded.hash == keccak(decoded.encode()) == transaction.hash
    assert decoded.hash == keccak(decoded.encode())
    changed = decoded.copy(nonce=decoded.nonce + 1)
    assert changed.hash == keccak(changed.encode()) != decoded.hash
    assert decoded.hash == keccak(decoded.encode())
