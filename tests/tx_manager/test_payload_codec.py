"""Envelope and raw-transaction codecs: round trips, truncation, alteration, validation."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tx_manager.errors import BadRequest, EnvelopeDecodeError, TxManagerError
from tx_manager.payload import (
    BOX_SIZE,
    HASH_SIZE,
    KEY_SIZE,
    NONCE_SIZE,
    EncodedPayload,
    PrivacyMode,
    RawTransaction,
)

keys32 = st.binary(min_size=KEY_SIZE, max_size=KEY_SIZE)


@st.composite
def envelopes(draw: st.DrawFn) -> EncodedPayload:
    recipient_keys = draw(st.lists(keys32, min_size=0, max_size=5, unique=True))
    return EncodedPayload(
        sender_key=draw(keys32),
        cipher_text=draw(st.binary(min_size=16, max_size=300)),
        cipher_text_nonce=draw(st.binary(min_size=NONCE_SIZE, max_size=NONCE_SIZE)),
        recipient_boxes=tuple(
            draw(st.binary(min_size=BOX_SIZE, max_size=BOX_SIZE)) for _ in recipient_keys
        ),
        recipient_nonce=draw(st.binary(min_size=NONCE_SIZE, max_size=NONCE_SIZE)),
        recipient_keys=tuple(recipient_keys),
        privacy_mode=draw(st.sampled_from(PrivacyMode)),
        affected_contract_transactions=tuple(
            draw(
                st.lists(
                    st.tuples(
                        st.binary(min_size=HASH_SIZE, max_size=HASH_SIZE),
                        st.binary(max_size=64),
                    ),
                    max_size=3,
                    unique_by=lambda pair: pair[0],
                )
            )
        ),
        exec_hash=draw(st.binary(max_size=64)),
        mandatory_recipients=tuple(draw(st.lists(keys32, max_size=3))),
        group_keys=tuple(sorted(draw(st.sets(keys32, max_size=5)))),
    )


@given(envelopes())
def test_envelope_bytes_round_trip(envelope: EncodedPayload) -> None:
    assert EncodedPayload.from_bytes(envelope.to_bytes()) == envelope


@given(envelopes())
def test_envelope_json_round_trip(envelope: EncodedPayload) -> None:
    assert EncodedPayload.from_json(envelope.to_json()) == envelope


@settings(max_examples=50)
@given(envelopes(), st.data())
def test_truncated_envelope_is_rejected(envelope: EncodedPayload, data: st.DataObject) -> None:
    encoded = envelope.to_bytes()
    cut = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    with pytest.raises(EnvelopeDecodeError):
        EncodedPayload.from_bytes(encoded[:cut])


@settings(max_examples=50)
@given(envelopes(), st.data())
def test_altered_envelope_is_rejected(envelope: EncodedPayload, data: st.DataObject) -> None:
    encoded = bytearray(envelope.to_bytes())
    index = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    encoded[index] ^= data.draw(st.integers(min_value=1, max_value=255))
    with pytest.raises(EnvelopeDecodeError):
        EncodedPayload.from_bytes(bytes(encoded))


@given(st.binary(max_size=200))
def test_random_bytes_give_a_typed_error(blob: bytes) -> None:
    with pytest.raises(EnvelopeDecodeError):
        EncodedPayload.from_bytes(blob)


def test_extended_envelope_is_rejected() -> None:
    envelope = EncodedPayload(
        sender_key=os.urandom(32),
        cipher_text=os.urandom(40),
        cipher_text_nonce=os.urandom(24),
        recipient_boxes=(),
        recipient_nonce=os.urandom(24),
        recipient_keys=(),
    )
    with pytest.raises(EnvelopeDecodeError):
        EncodedPayload.from_bytes(envelope.to_bytes() + b"\x00")


@pytest.mark.parametrize(
    "change",
    [
        {"sender_key": b"short"},
        {"cipher_text_nonce": b"\x00" * 12},
        {"recipient_boxes": (b"\x00" * BOX_SIZE,)},  # one box, no key
        {"recipient_keys": (b"k" * 32, b"k" * 32), "recipient_boxes": (b"b" * 48, b"b" * 48)},
        {"group_keys": (b"b" * 32, b"a" * 32)},  # not sorted
        {"version": 2},
    ],
)
def test_invalid_fields_are_typed_errors(change: dict[str, object]) -> None:
    fields: dict[str, object] = {
        "sender_key": os.urandom(32),
        "cipher_text": os.urandom(40),
        "cipher_text_nonce": os.urandom(24),
        "recipient_boxes": (),
        "recipient_nonce": os.urandom(24),
        "recipient_keys": (),
    }
    fields.update(change)
    with pytest.raises(EnvelopeDecodeError):
        EncodedPayload(**fields)  # type: ignore[arg-type]


def test_unknown_privacy_flag_is_refused() -> None:
    with pytest.raises(BadRequest):
        EncodedPayload.from_json(
            {
                "senderKey": "AA==",
                "cipherText": "",
                "cipherTextNonce": "",
                "recipientNonce": "",
                "recipientKeys": [],
                "recipientBoxes": [],
                "privacyMode": 7,
            }
        )


@given(
    keys32,
    st.binary(min_size=16, max_size=200),
    st.binary(min_size=BOX_SIZE, max_size=BOX_SIZE),
)
def test_raw_round_trip_and_truncation(sender: bytes, cipher_text: bytes, box: bytes) -> None:
    raw = RawTransaction(
        sender_key=sender,
        cipher_text=cipher_text,
        cipher_text_nonce=b"n" * NONCE_SIZE,
        sender_box=box,
        recipient_nonce=b"r" * NONCE_SIZE,
    )
    encoded = raw.to_bytes()
    assert RawTransaction.from_bytes(encoded) == raw
    assert RawTransaction.from_json(raw.to_json()) == raw
    with pytest.raises(EnvelopeDecodeError):
        RawTransaction.from_bytes(encoded[:-1])
    with pytest.raises(EnvelopeDecodeError):
        EncodedPayload.from_bytes(encoded)  # a raw transaction is not an envelope


def test_errors_share_one_root() -> None:
    assert issubclass(EnvelopeDecodeError, TxManagerError)
