"""Frozen v1 encodings: what is on disk today must stay readable after any codec change.

If a codec change breaks these, add a new version and keep decoding v1; never
edit these vectors.
"""

from __future__ import annotations

from tx_manager.payload import EncodedPayload, PrivacyMode, RawTransaction

ENVELOPE_V1 = bytes.fromhex(
    "51544d4501000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f00000014434343"
    "43434343434343434343434343434343434e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e000000"
    "0100000030424242424242424242424242424242424242424242424242424242424242424242424242424242"
    "4242424242424242425252525252525252525252525252525252525252525252520000000100000020010203"
    "0405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20010000000200000040484848484848"
    "4848484848484848484848484848484848484848484848484848484848484848484848484848484848484848"
    "4848484848484848484848484848000000405353535353535353535353535353535353535353535353535353"
    "5353535353535353535353535353535353535353535353535353535353535353535353535353000000044545"
    "4545000000000000000200000020000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d"
    "1e1f000000200102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20045f6695"
)
RAW_V1 = bytes.fromhex(
    "51544d5201000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f00000014434343"
    "43434343434343434343434343434343434e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e424242"
    "4242424242424242424242424242424242424242424242424242424242424242424242424242424242424242"
    "42525252525252525252525252525252525252525252525252bee4cdcd"
)


def test_envelope_v1_still_decodes() -> None:
    envelope = EncodedPayload.from_bytes(ENVELOPE_V1)
    assert envelope.version == 1
    assert envelope.sender_key == bytes(range(32))
    assert envelope.cipher_text == b"C" * 20
    assert envelope.cipher_text_nonce == b"N" * 24
    assert envelope.recipient_boxes == (b"B" * 48,)
    assert envelope.recipient_nonce == b"R" * 24
    assert envelope.recipient_keys == (bytes(range(1, 33)),)
    assert envelope.privacy_mode is PrivacyMode.PARTY_PROTECTION
    assert envelope.affected_contract_transactions == ((b"H" * 64, b"S" * 64),)
    assert envelope.exec_hash == b"EEEE"
    assert envelope.mandatory_recipients == ()
    assert envelope.group_keys == (bytes(range(32)), bytes(range(1, 33)))
    assert envelope.to_bytes() == ENVELOPE_V1


def test_raw_v1_still_decodes() -> None:
    raw = RawTransaction.from_bytes(RAW_V1)
    assert (raw.sender_key, raw.cipher_text, raw.sender_box) == (
        bytes(range(32)),
        b"C" * 20,
        b"B" * 48,
    )
    assert raw.to_bytes() == RAW_V1
