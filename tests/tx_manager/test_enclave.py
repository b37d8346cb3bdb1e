"""Enclave: round trips, tampering, key commitment, header binding, raw re-wrapping, challenges."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from tx_manager.enclave import (
    Enclave,
    KeyPair,
    SendMetadata,
    generate_keypair,
    seal,
    terms_mac,
)
from tx_manager.errors import BadRequest, DecryptionFailed, EnvelopeRejected, NotFound
from tx_manager.payload import (
    EncodedPayload,
    EncodedPayloadV1,
    ExecutionTerms,
    HeaderBinding,
    PrivacyMode,
    RawTransactionV1,
    decode_envelope,
    privacy_group_id,
)


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
    header = pushed.header
    enclave = Enclave([recipient])
    variants = []
    for i in range(len(pushed.cipher_text)):
        variants.append(replace(pushed, cipher_text=flip(pushed.cipher_text, i)))
    for i in range(len(pushed.recipient_boxes[0])):
        variants.append(replace(pushed, recipient_boxes=(flip(pushed.recipient_boxes[0], i),)))
    for i in range(len(pushed.recipient_nonce)):
        variants.append(replace(pushed, recipient_nonce=flip(pushed.recipient_nonce, i)))
    for i in range(len(header.cipher_text_nonce)):
        nonce = flip(header.cipher_text_nonce, i)
        variants.append(replace(pushed, header=replace(header, cipher_text_nonce=nonce)))
    for i in range(len(header.key_commitment)):
        commitment = flip(header.key_commitment, i)
        variants.append(replace(pushed, header=replace(header, key_commitment=commitment)))
    for i in range(len(header.sender_key)):
        sender_key = flip(header.sender_key, i)
        terms = ExecutionTerms.build(sender_key, [recipient.public])
        variants.append(replace(pushed, header=replace(header, sender_key=sender_key, terms=terms)))
    for variant in variants:
        # A flipped sender key may even be an invalid point: still a typed refusal.
        with pytest.raises((DecryptionFailed, BadRequest)):
            enclave.decrypt(variant)
        with pytest.raises((DecryptionFailed, BadRequest)):
            enclave.verify_incoming(variant)


@pytest.mark.parametrize(
    "change",
    [
        {"privacy_mode": PrivacyMode.PRIVATE_STATE_VALIDATION},
        {"exec_hash": b"changed"},
        {"affected_contract_transactions": ((b"h" * 64, b""),)},
    ],
)
def test_the_header_is_associated_data(keys: list[KeyPair], change: dict[str, object]) -> None:
    """Any change of the execution terms breaks the AEAD (and the hash, see the codec tests)."""
    sender, recipient = keys[0], keys[1]
    pushed = Enclave([sender]).encrypt(b"p", sender.public, [recipient.public])
    pushed = pushed.for_recipients({recipient.public})
    assert pushed.header.terms is not None
    terms = replace(pushed.header.terms, **change)  # type: ignore[arg-type]
    forged = replace(pushed, header=replace(pushed.header, terms=terms))
    with pytest.raises(DecryptionFailed, match="associated data"):
        Enclave([recipient]).verify_incoming(forged)


def test_a_widened_group_is_refused(keys: list[KeyPair]) -> None:
    sender, recipient, outsider = keys[0], keys[1], keys[2]
    pushed = Enclave([sender]).encrypt(b"p", sender.public, [recipient.public])
    pushed = pushed.for_recipients({recipient.public})
    terms = ExecutionTerms.build(sender.public, [recipient.public, outsider.public])
    forged = replace(pushed, header=replace(pushed.header, terms=terms))
    with pytest.raises(DecryptionFailed, match="associated data"):
        Enclave([recipient]).verify_incoming(forged)


def test_a_box_outside_the_group_is_refused(keys: list[KeyPair]) -> None:
    sender, recipient, outsider = keys[0], keys[1], keys[2]
    envelope = Enclave([sender]).encrypt(b"p", sender.public, [recipient.public])
    extra_box = seal(
        Enclave([sender]).box_key(sender.public, outsider.public),
        envelope.recipient_nonce,
        Enclave([sender]).master_key(envelope),
    )
    with_outsider = replace(
        envelope,
        recipient_keys=(*envelope.recipient_keys, outsider.public),
        recipient_boxes=(*envelope.recipient_boxes, extra_box),
    )
    with pytest.raises(EnvelopeRejected, match="outside the authenticated group"):
        Enclave([outsider]).verify_incoming(with_outsider.for_recipients({outsider.public}))


def test_a_box_holding_another_key_breaks_the_commitment(keys: list[KeyPair]) -> None:
    """A sender cannot give two recipients two keys (two plaintexts) for one hash."""
    sender, recipient = keys[0], keys[1]
    sending = Enclave([sender])
    envelope = sending.encrypt(b"what the recipient must see", sender.public, [recipient.public])
    other_key = os.urandom(32)
    box = seal(
        sending.box_key(sender.public, recipient.public), envelope.recipient_nonce, other_key
    )
    lying = replace(envelope, recipient_keys=(recipient.public,), recipient_boxes=(box,))
    with pytest.raises(DecryptionFailed, match="key commitment"):
        Enclave([recipient]).verify_incoming(lying)
    with pytest.raises(DecryptionFailed, match="key commitment"):
        Enclave([recipient]).decrypt(lying)


def test_forged_envelope_from_a_key_the_forger_does_not_hold(keys: list[KeyPair]) -> None:
    victim_sender, recipient, forger = keys[0], keys[1], keys[2]
    forged = Enclave([forger]).encrypt(b"evil", forger.public, [recipient.public])
    pushed = forged.for_recipients({recipient.public})
    terms = ExecutionTerms.build(victim_sender.public, [recipient.public])
    claimed = replace(
        pushed, header=replace(pushed.header, sender_key=victim_sender.public, terms=terms)
    )
    with pytest.raises(DecryptionFailed):
        Enclave([recipient]).verify_incoming(claimed)


def test_keyed_raw_rewrap_keeps_the_hash(keys: list[KeyPair]) -> None:
    sender, recipient = keys[0], keys[1]
    enclave = Enclave([sender])
    raw = enclave.encrypt_raw(b"signed later", sender.public)
    assert raw.header.binding is HeaderBinding.KEYED
    assert enclave.open_raw(raw) == b"signed later"
    metadata = SendMetadata(privacy_mode=PrivacyMode.PARTY_PROTECTION)
    envelope = enclave.wrap_raw(raw, [recipient.public], metadata)
    assert isinstance(envelope, EncodedPayload)
    assert envelope.hash == raw.hash
    assert envelope.privacy_mode is PrivacyMode.PARTY_PROTECTION
    assert envelope.parties == tuple(sorted([sender.public, recipient.public]))
    assert enclave.wrap_raw(raw, [recipient.public], metadata) == envelope  # deterministic
    pushed = envelope.for_recipients({recipient.public})
    Enclave([recipient]).verify_incoming(pushed)
    assert Enclave([recipient]).decrypt(pushed) == b"signed later"


def test_keyed_terms_are_bound_by_the_mac(keys: list[KeyPair]) -> None:
    """An outsider cannot change keyed terms; a holder of the master key could (documented)."""
    sender, recipient, outsider = keys[0], keys[1], keys[2]
    enclave = Enclave([sender])
    raw = enclave.encrypt_raw(b"keyed", sender.public)
    envelope = enclave.wrap_raw(raw, [recipient.public], SendMetadata())
    assert isinstance(envelope, EncodedPayload) and envelope.keyed_terms is not None
    pushed = envelope.for_recipients({recipient.public})
    wider = ExecutionTerms.build(sender.public, [recipient.public, outsider.public])
    forged = replace(pushed, keyed_terms=wider)
    assert forged.hash == pushed.hash
    with pytest.raises(DecryptionFailed, match="MAC"):
        Enclave([recipient]).verify_incoming(forged)
    master_key = Enclave([recipient]).master_key(pushed)
    remaced = replace(forged, terms_mac=terms_mac(master_key, forged.hash, wider))
    Enclave([recipient]).verify_incoming(remaced)  # what "keyed" cannot prevent


def test_hashed_raw_must_be_sent_to_the_terms_it_fixed(keys: list[KeyPair]) -> None:
    sender, recipient, other = keys[0], keys[1], keys[2]
    enclave = Enclave([sender])
    fixed = SendMetadata(privacy_mode=PrivacyMode.PARTY_PROTECTION)
    raw = enclave.encrypt_raw(b"fixed", sender.public, [recipient.public], fixed)
    assert raw.header.binding is HeaderBinding.HASHED
    with pytest.raises(BadRequest, match="parties") as failed:
        enclave.wrap_raw(raw, [other.public], fixed)
    assert "only /sendsignedtx" in failed.value.message
    with pytest.raises(BadRequest, match="privacyFlag"):
        enclave.wrap_raw(raw, [recipient.public], SendMetadata())
    envelope = enclave.wrap_raw(raw, [recipient.public], fixed)
    assert envelope.hash == raw.hash
    assert Enclave([recipient]).decrypt(envelope.for_recipients({recipient.public})) == b"fixed"


def test_version_1_raw_is_sent_as_version_1(keys: list[KeyPair]) -> None:
    """A raw transaction stored before version 2 keeps its signed hash: it goes out as v1."""
    sender, recipient = keys[0], keys[1]
    enclave = Enclave([sender])
    master_key, nonce, box_nonce = os.urandom(32), os.urandom(24), os.urandom(24)
    raw = RawTransactionV1(
        sender_key=sender.public,
        cipher_text=seal(master_key, nonce, b"old raw"),
        cipher_text_nonce=nonce,
        sender_box=seal(enclave.box_key(sender.public, sender.public), box_nonce, master_key),
        recipient_nonce=box_nonce,
    )
    assert enclave.open_raw(raw) == b"old raw"
    envelope = enclave.wrap_raw(raw, [recipient.public], SendMetadata())
    assert isinstance(envelope, EncodedPayloadV1)
    assert envelope.hash == raw.hash
    assert envelope.group_keys == tuple(sorted([sender.public, recipient.public]))
    assert Enclave([recipient]).decrypt(envelope.for_recipients({recipient.public})) == b"old raw"


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


def test_derived_key_cache_is_a_bounded_lru(keys: list[KeyPair]) -> None:
    local, remotes = keys[0], [k.public for k in keys[1:6]]
    enclave = Enclave([local], derived_key_cache=3)
    kept = enclave.box_key(local.public, remotes[0])
    for remote in remotes[1:]:
        enclave.box_key(local.public, remote)
        assert enclave.box_key(local.public, remotes[0]) is kept  # recently used: stays
        assert enclave.derived_keys_cached <= 3
    assert enclave.derived_keys_cached == 3
    evicted = enclave.box_key(local.public, remotes[1])  # pushed out, derived again
    assert evicted == Enclave([local]).box_key(local.public, remotes[1])
    with pytest.raises(BadRequest):
        Enclave([local], derived_key_cache=0)


def test_group_id_is_order_independent(keys: list[KeyPair]) -> None:
    a, b, c = (k.public for k in keys[:3])
    assert privacy_group_id([a, b, c]) == privacy_group_id([c, a, b, a])
    assert privacy_group_id([a, b]) != privacy_group_id([a, c])


def test_key_pair_repr_hides_private(keys: list[KeyPair]) -> None:
    assert keys[0].private.hex() not in repr(keys[0])
    assert str(keys[0].private) not in repr(keys[0])


def test_envelope_equality_survives_codec(keys: list[KeyPair]) -> None:
    envelope = Enclave([keys[0]]).encrypt(b"z", keys[0].public, [keys[1].public])
    assert decode_envelope(envelope.to_bytes()) == envelope
    assert envelope.version == 2 and envelope.header_binding is HeaderBinding.HASHED
