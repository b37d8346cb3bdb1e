"""Envelope and raw-transaction codecs, v2 and v1: round trips, bounds, alteration, the hash."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tx_manager.errors import BadRequest, EnvelopeConflict, EnvelopeDecodeError, TxManagerError
from tx_manager.payload import (
    BOX_SIZE,
    HASH_SIZE,
    KEY_SIZE,
    NONCE_SIZE,
    EncodedPayload,
    EncodedPayloadV1,
    Envelope,
    EnvelopeHeader,
    ExecutionTerms,
    HeaderBinding,
    PrivacyMode,
    RawTransaction,
    RawTransactionV1,
    decode_envelope,
    decode_raw,
    key_commitment,
)

keys32 = st.binary(min_size=KEY_SIZE, max_size=KEY_SIZE)
nonces = st.binary(min_size=NONCE_SIZE, max_size=NONCE_SIZE)


@st.composite
def terms_for(draw: st.DrawFn, sender: bytes) -> ExecutionTerms:
    others = draw(st.lists(keys32, max_size=4, unique=True))
    group = sorted({sender, *others})
    return ExecutionTerms(
        group_keys=tuple(group),
        privacy_mode=draw(st.sampled_from(PrivacyMode)),
        mandatory_recipients=tuple(sorted(draw(st.sets(st.sampled_from(group), max_size=3)))),
        exec_hash=draw(st.binary(max_size=64)),
        affected_contract_transactions=tuple(
            sorted(
                draw(
                    st.dictionaries(
                        st.binary(min_size=HASH_SIZE, max_size=HASH_SIZE),
                        st.binary(max_size=64),
                        max_size=3,
                    )
                ).items()
            )
        ),
    )


@st.composite
def envelopes(draw: st.DrawFn, binding: HeaderBinding | None = None) -> EncodedPayload:
    sender = draw(keys32)
    terms = draw(terms_for(sender))
    binding = binding or draw(st.sampled_from(HeaderBinding))
    hashed = binding is HeaderBinding.HASHED
    header = EnvelopeHeader(
        binding=binding,
        sender_key=sender,
        cipher_text_nonce=draw(nonces),
        key_commitment=draw(st.binary(min_size=32, max_size=32)),
        terms=terms if hashed else None,
    )
    box_keys = draw(st.lists(st.sampled_from(terms.group_keys), unique=True))
    return EncodedPayload(
        header=header,
        cipher_text=draw(st.binary(min_size=16, max_size=300)),
        recipient_nonce=draw(nonces),
        recipient_keys=tuple(box_keys),
        recipient_boxes=tuple(
            draw(st.binary(min_size=BOX_SIZE, max_size=BOX_SIZE)) for _ in box_keys
        ),
        keyed_terms=None if hashed else terms,
        terms_mac=b"" if hashed else draw(st.binary(min_size=32, max_size=32)),
    )


@st.composite
def v1_envelopes(draw: st.DrawFn) -> EncodedPayloadV1:
    recipient_keys = draw(st.lists(keys32, min_size=0, max_size=5, unique=True))
    return EncodedPayloadV1(
        sender_key=draw(keys32),
        cipher_text=draw(st.binary(min_size=16, max_size=300)),
        cipher_text_nonce=draw(nonces),
        recipient_boxes=tuple(
            draw(st.binary(min_size=BOX_SIZE, max_size=BOX_SIZE)) for _ in recipient_keys
        ),
        recipient_nonce=draw(nonces),
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


any_envelope = st.one_of(envelopes(), v1_envelopes())


@given(any_envelope)
def test_envelope_bytes_round_trip(envelope: Envelope) -> None:
    decoded = decode_envelope(envelope.to_bytes())
    assert decoded == envelope
    assert decoded.hash == envelope.hash


@given(envelopes())
def test_envelope_json_round_trip(envelope: EncodedPayload) -> None:
    assert EncodedPayload.from_json(envelope.to_json()) == envelope


@given(v1_envelopes())
def test_v1_envelope_json_round_trip(envelope: EncodedPayloadV1) -> None:
    assert EncodedPayloadV1.from_json(envelope.to_json()) == envelope


@settings(max_examples=50)
@given(any_envelope, st.data())
def test_truncated_envelope_is_rejected(envelope: Envelope, data: st.DataObject) -> None:
    encoded = envelope.to_bytes()
    cut = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    with pytest.raises(EnvelopeDecodeError):
        decode_envelope(encoded[:cut])


@settings(max_examples=50)
@given(any_envelope, st.data())
def test_altered_envelope_is_rejected(envelope: Envelope, data: st.DataObject) -> None:
    encoded = bytearray(envelope.to_bytes())
    index = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    encoded[index] ^= data.draw(st.integers(min_value=1, max_value=255))
    with pytest.raises(EnvelopeDecodeError):
        decode_envelope(bytes(encoded))


@given(st.binary(max_size=200))
def test_random_bytes_give_a_typed_error(blob: bytes) -> None:
    with pytest.raises(EnvelopeDecodeError):
        decode_envelope(blob)
    with pytest.raises(EnvelopeDecodeError):
        decode_envelope(b"QTME\x02" + blob)


@given(envelopes())
def test_extended_envelope_is_rejected(envelope: EncodedPayload) -> None:
    with pytest.raises(EnvelopeDecodeError):
        decode_envelope(envelope.to_bytes() + b"\x00")


@settings(max_examples=30)
@given(envelopes(), st.data())
def test_hash_covers_the_header_and_not_the_boxes(
    envelope: EncodedPayload, data: st.DataObject
) -> None:
    assert len(envelope.hash) == HASH_SIZE
    assert envelope.for_recipients(set()).hash == envelope.hash
    assert replace(envelope, recipient_nonce=bytes(NONCE_SIZE)).hash == envelope.hash
    other_nonce = data.draw(nonces.filter(lambda n: n != envelope.cipher_text_nonce))
    assert (
        replace(envelope, header=replace(envelope.header, cipher_text_nonce=other_nonce)).hash
        != envelope.hash
    )
    other_commitment = data.draw(
        st.binary(min_size=32, max_size=32).filter(lambda c: c != envelope.key_commitment)
    )
    new_header = replace(envelope.header, key_commitment=other_commitment)
    assert replace(envelope, header=new_header).hash != envelope.hash
    if envelope.header.terms is not None:
        terms = envelope.header.terms
        flag = PrivacyMode((int(terms.privacy_mode) + 1) % 4)
        changed = [
            replace(terms, privacy_mode=flag),
            replace(terms, exec_hash=terms.exec_hash + b"x"),
            replace(terms, group_keys=tuple(sorted({*terms.group_keys, b"\xff" * 32}))),
        ]
        if terms.mandatory_recipients:
            changed.append(replace(terms, mandatory_recipients=()))
        for new_terms in changed:
            new_header = replace(envelope.header, terms=new_terms)
            assert replace(envelope, header=new_header).hash != envelope.hash


@given(envelopes(HeaderBinding.KEYED))
def test_keyed_terms_are_not_under_the_hash(envelope: EncodedPayload) -> None:
    """The keyed binding's terms sit beside the hash: the MAC binds them, not the hash."""
    assert envelope.keyed_terms is not None
    flag = PrivacyMode((int(envelope.privacy_mode) + 1) % 4)
    assert replace(envelope, keyed_terms=replace(envelope.keyed_terms, privacy_mode=flag)).hash == (
        envelope.hash
    )


def _header(**change: object) -> EnvelopeHeader:
    sender = b"s" * 32
    fields: dict[str, object] = {
        "binding": HeaderBinding.HASHED,
        "sender_key": sender,
        "cipher_text_nonce": b"n" * NONCE_SIZE,
        "key_commitment": key_commitment(b"m" * 32),
        "terms": ExecutionTerms(group_keys=(b"a" * 32, sender)),
    }
    fields.update(change)
    return EnvelopeHeader(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "change",
    [
        {"sender_key": b"short"},
        {"cipher_text_nonce": b"\x00" * 12},
        {"key_commitment": b"\x00" * 31},
        {"terms": None},  # hashed without terms
        {"binding": HeaderBinding.KEYED},  # keyed with terms
        {"terms": ExecutionTerms(group_keys=(b"a" * 32,))},  # sender outside the group
        {"version": 3},
    ],
)
def test_invalid_header_fields_are_typed_errors(change: dict[str, object]) -> None:
    with pytest.raises(EnvelopeDecodeError):
        _header(**change)


@pytest.mark.parametrize(
    "change",
    [
        {"group_keys": ()},
        {"group_keys": (b"b" * 32, b"a" * 32)},  # not sorted
        {"group_keys": (b"a" * 32, b"a" * 32)},  # repeated
        {"group_keys": (b"a" * 31,)},
        {"mandatory_recipients": (b"z" * 32,)},  # not a member
        {"affected_contract_transactions": ((b"h" * 63, b""),)},
        {"affected_contract_transactions": ((b"i" * 64, b""), (b"h" * 64, b""))},  # not sorted
    ],
)
def test_invalid_terms_are_typed_errors(change: dict[str, object]) -> None:
    fields: dict[str, object] = {"group_keys": (b"a" * 32,)}
    fields.update(change)
    with pytest.raises(EnvelopeDecodeError):
        ExecutionTerms(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "change",
    [
        {"recipient_boxes": (b"\x00" * BOX_SIZE,)},  # one box, no key
        {"recipient_keys": (b"a" * 32, b"a" * 32), "recipient_boxes": (b"b" * 48, b"b" * 48)},
        {"cipher_text": b"short"},
        {"recipient_nonce": b"n"},
        {"terms_mac": b"m" * 32},  # a hashed envelope carries no MAC
        {"keyed_terms": ExecutionTerms(group_keys=(b"s" * 32,)), "terms_mac": b"m" * 32},
        {"version": 1},
    ],
)
def test_invalid_envelope_fields_are_typed_errors(change: dict[str, object]) -> None:
    fields: dict[str, object] = {
        "header": _header(),
        "cipher_text": os.urandom(40),
        "recipient_nonce": os.urandom(24),
        "recipient_keys": (),
        "recipient_boxes": (),
    }
    fields.update(change)
    with pytest.raises(EnvelopeDecodeError):
        EncodedPayload(**fields)  # type: ignore[arg-type]


def test_a_header_whose_binding_disagrees_with_its_content_does_not_decode() -> None:
    encoded_header = bytearray(_header().to_bytes())
    assert EnvelopeHeader.from_bytes(bytes(encoded_header)) == _header()
    encoded_header[5] = int(HeaderBinding.KEYED)  # terms still inside, CRC now wrong too
    with pytest.raises(EnvelopeDecodeError):
        EnvelopeHeader.from_bytes(bytes(encoded_header))


def test_merge_rules() -> None:
    sender, other, outsider = b"a" * 32, b"b" * 32, b"c" * 32
    envelope = EncodedPayload(
        header=_header(sender_key=sender, terms=ExecutionTerms(group_keys=(sender, other))),
        cipher_text=os.urandom(40),
        recipient_nonce=b"r" * 24,
        recipient_keys=(sender, other),
        recipient_boxes=(b"1" * 48, b"2" * 48),
    )
    mine = envelope.for_recipients({sender})
    assert mine.merged_with(envelope.for_recipients({other})) == envelope
    assert mine.merged_with(mine) is mine
    with pytest.raises(EnvelopeConflict, match="outside the authenticated group"):
        mine.merged_with(replace(mine, recipient_keys=(outsider,)))
    with pytest.raises(EnvelopeConflict, match="recipient nonce"):
        mine.merged_with(replace(mine, recipient_nonce=b"x" * 24))
    widened = replace(
        mine,
        header=replace(mine.header, terms=ExecutionTerms(group_keys=(sender, other, outsider))),
    )
    with pytest.raises(EnvelopeConflict, match="parties"):
        mine.merged_with(widened)


def test_unknown_privacy_flag_is_refused() -> None:
    with pytest.raises(BadRequest):
        ExecutionTerms.from_json({"groupKeys": ["AA=="], "privacyFlag": 7})
    with pytest.raises(BadRequest):
        EncodedPayloadV1.from_json(
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
    st.sampled_from(HeaderBinding),
)
def test_raw_round_trip_and_truncation(
    sender: bytes, cipher_text: bytes, box: bytes, binding: HeaderBinding
) -> None:
    header = EnvelopeHeader(
        binding=binding,
        sender_key=sender,
        cipher_text_nonce=b"n" * NONCE_SIZE,
        key_commitment=b"k" * 32,
        terms=ExecutionTerms(group_keys=(sender,)) if binding is HeaderBinding.HASHED else None,
    )
    raw = RawTransaction(
        header=header, cipher_text=cipher_text, sender_box=box, recipient_nonce=b"r" * NONCE_SIZE
    )
    encoded = raw.to_bytes()
    assert decode_raw(encoded) == raw
    assert RawTransaction.from_json(raw.to_json()) == raw
    with pytest.raises(EnvelopeDecodeError):
        decode_raw(encoded[:-1])
    with pytest.raises(EnvelopeDecodeError):
        decode_envelope(encoded)  # a raw transaction is not an envelope
    raw_v1 = RawTransactionV1(sender, cipher_text, b"n" * NONCE_SIZE, box, b"r" * NONCE_SIZE)
    assert decode_raw(raw_v1.to_bytes()) == raw_v1
    assert RawTransactionV1.from_json(raw_v1.to_json()) == raw_v1


def test_errors_share_one_root() -> None:
    assert issubclass(EnvelopeDecodeError, TxManagerError)
    assert issubclass(EnvelopeConflict, TxManagerError)
    assert EnvelopeConflict.http_status == 409
