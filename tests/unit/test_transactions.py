"""The chain's transaction classes remember work on the object (``hash``, a validation
that passed); what they remember must always be what py-evm would compute again."""

from __future__ import annotations

import pytest
import rlp
from eth.abc import SignedTransactionAPI
from eth_utils import keccak
from hypothesis import given, settings
from hypothesis import strategies as st
from rlp.codec import consume_length_prefix

from quorum_node.chain.blocks import decode_block, encode_block
from quorum_node.chain.transactions import QuorumLegacyTransaction, take_hash_from_wire
from quorum_node.chain.vm import QuorumVM
from tests.support.inproc import KEYS, new_chain, private_transaction, transfer

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


@settings(max_examples=60, deadline=None)
@given(
    nonce=st.integers(0, 2**64 - 1),
    gas_price=st.integers(0, 2**256 - 1),
    gas=st.integers(21_000, 2**63 - 1),
    value=st.integers(0, 2**256 - 1),
    to=st.one_of(st.just(b""), st.binary(min_size=20, max_size=20)),
    data=st.binary(max_size=300),
    key_index=st.integers(0, len(KEYS) - 1),
)
def test_a_hash_taken_from_the_wire_is_the_keccak_of_the_reencoding(
    nonce: int, gas_price: int, gas: int, value: int, to: bytes, data: bytes, key_index: int
) -> None:
    """``take_hash_from_wire`` hashes the bytes a transaction was decoded from instead of
    encoding it again: RLP decoding is strict, so any bytes that decode are the encoding."""
    unsigned = BUILDER.create_unsigned_transaction(
        nonce=nonce, gas_price=gas_price, gas=gas, to=to, value=value, data=data
    )
    raw = unsigned.as_signed_transaction(KEYS[key_index], chain_id=1337).encode()
    decoded = BUILDER.decode(raw)
    take_hash_from_wire(decoded, raw)
    assert "_quorum_hash" in decoded.__dict__
    assert decoded.hash == keccak(BUILDER.decode(raw).encode()) == keccak(decoded.encode())


def test_bytes_that_are_not_the_canonical_encoding_do_not_decode() -> None:
    """What the shortcut relies on: a non-canonical form of a transaction (a leading zero
    in an integer, a long prefix for a short string or list, bytes after it) is refused
    by the decoder, so it never reaches ``take_hash_from_wire``."""
    raw = transfer(KEYS[0], 5).encode()
    fields = rlp.decode(raw)
    _, _, length, start = consume_length_prefix(raw, 0)
    body = raw[start:]
    recipient = body.index(b"\x94")
    variants = [
        rlp.encode([b"\x00\x05", *fields[1:]]),
        rlp.codec.length_prefix(len(body) + 1, 0xC0)
        + body[:recipient]
        + b"\xb8\x14"
        + body[recipient + 1 :],
        b"\xf9" + len(body).to_bytes(2, "big") + body,
        raw + b"\x00",
    ]
    for variant in variants:
        assert variant != raw
        with pytest.raises(Exception):  # noqa: B017 - rlp and py-evm raise several kinds
            BUILDER.decode(variant)


def test_a_decoded_block_gives_each_legacy_transaction_its_hash_from_the_block() -> None:
    transactions = [
        transfer(KEYS[0], 0),
        private_transaction(KEYS[1], 0, b"\x07" * 64),
        transfer(KEYS[2], 0, value=10**18),
    ]
    block = new_chain().seal_block(transactions, timestamp=1, coinbase=b"\x00" * 20).block
    decoded = decode_block(encode_block(block))
    assert len(block.transactions) == len(transactions)
    assert [t.hash for t in decoded.transactions] == [t.hash for t in transactions]
    for transaction in decoded.transactions:
        assert "_quorum_hash" in transaction.__dict__
        assert transaction.hash == keccak(BUILDER.decode(transaction.encode()).encode())
