"""Enclave: round trips, tampering, non-recipients, raw re-wrapping, challenges."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tx_manager.enclave import Enclave, KeyPair, SendMetadata, generate_keypair
from tx_manager.errors import BadRequest, DecryptionFailed, NotFound
from tx_manager.payload import EncodedPayload, PrivacyMode, privacy_group_id


def flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


@pytest.fixture(scope="module")
def keys() -> list[KeyPair]:
    return [generate_keypair() for _ in range(11)]


@pytest.mark.parametrize("recipient_count", range(1, 11))
def test_round_trip_for_every_recipient(keys: list[KeyPair], recipient_count: int) -> None:
    sender, recipients = keys[0], keys[1 : 1 + recipient_count]
    envelope = Enclave([sender]).encrypt(
        b"payload %d" % recipient_count, sender.public, [r.public for r in recipients]
    )
    assert len(envelope.hash) == 64
    assert set(envelope.recipient_keys) == {sender.public, *(r.public for r in recipients)}
    assert Enclave([sender]).decrypt(envelope) == b"payload %d" % recipient_count
    for recipient in recipients:
        pushed = envelope.for_recipients({recipient.public})
        assert len(pushed.recipient_boxes) == 1
        assert pushed.group_keys == envelope.group_keys  # every party sees the whole group
        enclave = Enclave([recipient])
        enclave.verify_incoming(pushed)
        assert enclave.decrypt(pushed) == b"payload %d" % recipient_count


def test_sender_can_open_a_recipients_box(keys: list[KeyPair]) -> None:
    """What resend gives back to a sender that lost its data: the recipient's own box."""
    sender, recipient = keys[0], keys[1]
    envelope = Enclave([sender]).encrypt(b"mine", sender.public, [recipient.public])
    only_recipient_box = envelope.for_recipients({recipient.public})
    Enclave([sender]).verify_incoming(only_recipient_box)
    assert Enclave([sender]).decrypt(only_recipient_box) == b"mine"


def test_non_recipient_cannot_open(keys: list[KeyPair]) -> None:
    sender, recipient, outsider = keys[0], keys[1], keys[2]
    envelope = Enclave([sender]).encrypt(b"secret", sender.public, [recipient.public])
    with pytest.raises(NotFound):
        Enclave([outsider]).decrypt(envelope)
    with pytest.raises(DecryptionFailed):
        Enclave([outsider]).verify_incoming(envelope.for_recipients({recipient.public}))


def test_outsider_claiming_a_box_for_itself_fails(keys: list[KeyPair]) -> None:
    """A box relabelled with the outsider's key does not open under the outsider's key."""
    sender, recipient, outsider = keys[0], keys[1], keys[2]
    envelope = Enclave([sender]).encrypt(b"secret", sender.public, [recipient.public])
    pushed = envelope.for_recipients({recipient.public})
    relabelled = replace(pushed, recipient_keys=(outsider.public,))
    with pytest.raises(DecryptionFailed):
        Enclave([outsider]).decrypt(relabelled)


def test_tampering_with_any_byte_fails(keys: list[KeyPair]) -> None:
    sender, recipient = keys[0], keys[1]
    envelope = Enclave([sender]).encrypt(b"x" * 40, sender.public, [recipient.public])
    pushed = envelope.for_recipients({recipient.public})
    enclave = Enclave([recipient])
    variants = []
    for i in range(len(pushed.cipher_text)):
        variants.append(replace(pushed, cipher_text=flip(pushed.cipher_text, i)))
    for i in range(len(pushed.recipient_boxes[0])):
        variants.append(replace(pushed, recipient_boxes=(flip(pushed.recipient_boxes[0], i),)))
    for i in range(len(pushed.cipher_text_nonce)):
        variants.append(replace(pushed, cipher_text_nonce=flip(pushed.cipher_text_nonce, i)))
    for i in range(len(pushed.recipient_nonce)):
        variants.append(replace(pushed, recipient_nonce=flip(pushed.recipient_nonce, i)))
    for i in range(len(pushed.sender_key)):
        variants.append(replace(pushed, sender_key=flip(pushed.sender_key, i)))
    for variant in variants:
        # A flipped sender key may even be an invalid point: still a typed refusal.
        with pytest.raises((DecryptionFailed, BadRequest)):
            enclave.decrypt(variant)
        with pytest.raises((DecryptionFailed, BadRequest)):
            enclave.verify_incoming(variant)


def test_forged_envelope_from_a_key_the_forger_does_not_hold(keys: list[KeyPair]) -> None:
    victim_sender, recipient, forger = keys[0], keys[1], keys[2]
    forged = Enclave([forger]).encrypt(b"evil", forger.public, [recipient.public])
    claimed = replace(forged.for_recipients({recipient.public}), sender_key=victim_sender.public)
    with pytest.raises(DecryptionFailed):
        Enclave([recipient]).verify_incoming(claimed)


def test_raw_rewrap_keeps_the_hash(keys: list[KeyPair]) -> None:
    sender, recipient = keys[0], keys[1]
    enclave = Enclave([sender])
    raw = enclave.encrypt_raw(b"signed later", sender.public)
    assert enclave.open_raw(raw) == b"signed later"
    metadata = SendMetadata(privacy_mode=PrivacyMode.PARTY_PROTECTION)
    envelope = enclave.wrap_raw(raw, [recipient.public], metadata)
    assert envelope.hash == raw.hash
    assert envelope.privacy_mode is PrivacyMode.PARTY_PROTECTION
    assert Enclave([recipient]).decrypt(envelope.for_recipients({recipient.public})) == (
        b"signed later"
    )


def test_several_local_keys_and_as_key(keys: list[KeyPair]) -> None:
    sender, first, second = keys[0], keys[1], keys[2]
    envelope = Enclave([sender]).encrypt(b"both", sender.public, [first.public])
    manager = Enclave([second, first])
    assert manager.decrypt(envelope.for_recipients({first.public})) == b"both"
    with pytest.raises(NotFound):
        manager.decrypt(envelope.for_recipients({first.public}), as_key=second.public)


def test_challenge_round_trip_and_domain_separation(keys: list[KeyPair]) -> None:
    asker, holder = keys[0], keys[1]
    nonce, sealed = Enclave([asker]).seal_challenge(asker.public, holder.public, b"r" * 32)
    assert Enclave([holder]).open_challenge(holder.public, asker.public, nonce, sealed) == b"r" * 32
    # An envelope box must not be openable through the challenge path (no decryption oracle).
    envelope = Enclave([asker]).encrypt(b"p", asker.public, [holder.public])
    box = envelope.for_recipients({holder.public})
    with pytest.raises(DecryptionFailed):
        Enclave([holder]).open_challenge(
            holder.public, asker.public, box.recipient_nonce, box.recipient_boxes[0]
        )


def test_shared_keys_are_cached(keys: list[KeyPair]) -> None:
    sender, recipient = keys[0], keys[1]
    enclave = Enclave([sender])
    first = enclave.box_key(sender.public, recipient.public)
    assert enclave.box_key(sender.public, recipient.public) is first
    assert Enclave([recipient]).box_key(recipient.public, sender.public) == first


def test_group_id_is_order_independent(keys: list[KeyPair]) -> None:
    a, b, c = (k.public for k in keys[:3])
    assert privacy_group_id([a, b, c]) == privacy_group_id([c, a, b, a])
    assert privacy_group_id([a, b]) != privacy_group_id([a, c])


def test_key_pair_repr_hides_private(keys: list[KeyPair]) -> None:
    assert keys[0].private.hex() not in repr(keys[0])
    assert str(keys[0].private) not in repr(keys[0])


def test_envelope_equality_survives_codec(keys: list[KeyPair]) -> None:
    envelope = Enclave([keys[0]]).encrypt(b"z", keys[0].public, [keys[1].public])
    assert EncodedPayload.from_bytes(envelope.to_bytes()) == envelope
