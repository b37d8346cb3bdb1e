"""Disclosure in process: send, disclose to an outside key, open offline; every check fails
on its own; the binding tag; disclosure and commitment signatures never pass as each other."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from quorum_shared import commitments
from quorum_shared.commitments import CommitmentClaim, GroupCommitment
from tx_manager.disclosure import (
    DISCLOSURE_DOMAIN,
    DISCLOSURE_INFO,
    DisclosedEnvelope,
    DisclosureCheckFailed,
    DisclosureFormatError,
    check_binding,
    disclosure_signed_bytes,
    open_disclosed,
    verify_disclosure_signature,
    wrap_key,
)
from tx_manager.enclave import Enclave, KeyPair, SendMetadata, generate_keypair
from tx_manager.errors import BadRequest, NotFound
from tx_manager.payload import (
    EncodedPayload,
    EncodedPayloadV1,
    PrivacyMode,
    transaction_hash,
)
from tx_manager.primitives import derive_pairwise


def flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


@pytest.fixture(scope="module")
def keys() -> dict[str, KeyPair]:
    return {name: generate_keypair() for name in ("a", "b", "c", "regulator", "other")}


def _sent(keys: dict[str, KeyPair], payload: bytes = b"the private payload") -> EncodedPayload:
    a, b = keys["a"], keys["b"]
    metadata = SendMetadata(
        privacy_mode=PrivacyMode.MANDATORY_RECIPIENTS, mandatory_recipients=(b.public,)
    )
    return Enclave([a]).encrypt(payload, a.public, [b.public], metadata)


def _disclosed_by_b(keys: dict[str, KeyPair], envelope: EncodedPayload) -> DisclosedEnvelope:
    b = keys["b"]
    return Enclave([b]).disclose(
        envelope.for_recipients({b.public}), b.public, keys["regulator"].public
    )


def _step(keys: dict[str, KeyPair], payload_hash: bytes, disclosed: DisclosedEnvelope) -> str:
    with pytest.raises(DisclosureCheckFailed) as failure:
        open_disclosed(keys["regulator"].private, payload_hash, disclosed)
    return failure.value.step


def test_an_outside_key_opens_a_disclosed_payload_and_its_terms(keys: dict[str, KeyPair]) -> None:
    envelope = _sent(keys)
    disclosed = _disclosed_by_b(keys, envelope)
    opened = open_disclosed(keys["regulator"].private, envelope.hash, disclosed)
    assert opened.payload == b"the private payload"
    assert opened.sender == keys["a"].public
    assert opened.terms.group_keys == tuple(sorted([keys["a"].public, keys["b"].public]))
    assert opened.terms.privacy_mode is PrivacyMode.MANDATORY_RECIPIENTS
    assert opened.terms.mandatory_recipients == (keys["b"].public,)
    assert disclosed.payload_hash == envelope.hash
    assert disclosed.discloser == keys["b"].public
    assert disclosed.signer == Enclave([keys["b"]]).identities[keys["b"].public]


def test_the_sender_can_disclose_too(keys: dict[str, KeyPair]) -> None:
    envelope = _sent(keys)
    disclosed = Enclave([keys["a"]]).disclose(envelope, keys["a"].public, keys["regulator"].public)
    assert open_disclosed(keys["regulator"].private, envelope.hash, disclosed).payload == (
        b"the private payload"
    )


def test_json_round_trip_and_strict_parsing(keys: dict[str, KeyPair]) -> None:
    disclosed = _disclosed_by_b(keys, _sent(keys))
    as_json = disclosed.to_json()
    assert set(as_json) == {
        "header",
        "cipherText",
        "discloser",
        "recipient",
        "wrappedKey",
        "signer",
        "binding",
    }
    assert set(as_json["wrappedKey"]) == {"nonce", "box"}
    assert as_json["signer"].startswith("0x") and as_json["binding"].startswith("0x")
    assert DisclosedEnvelope.from_json(as_json) == disclosed
    assert DisclosedEnvelope.from_bytes(disclosed.to_bytes()) == disclosed
    assert DisclosedEnvelope.from_json({**as_json, "extra": 1}) == disclosed
    bad_cases: list[tuple[object, str]] = [
        ([], "must be a JSON object"),
        ({k: v for k, v in as_json.items() if k != "header"}, "header is missing"),
        ({**as_json, "discloser": "not base64!"}, "discloser is not valid base64"),
        ({**as_json, "recipient": "AAAA"}, "recipient must be 32 bytes"),
        ({**as_json, "signer": as_json["signer"][2:]}, "signer must be 0x-prefixed"),
        ({**as_json, "binding": "0x1234"}, "binding must be 32 bytes"),
        ({**as_json, "wrappedKey": {"nonce": "AAAA"}}, "wrappedKey.nonce must be 24 bytes"),
        ({**as_json, "wrappedKey": "x"}, "wrappedKey must be a JSON object"),
        ({**as_json, "cipherText": ""}, "cipher_text is shorter than its tag"),
    ]
    for bad, message in bad_cases:
        with pytest.raises(DisclosureFormatError, match=message):
            DisclosedEnvelope.from_json(bad)
    with pytest.raises(DisclosureFormatError, match="not valid JSON"):
        DisclosedEnvelope.from_bytes(b"{")


def test_a_changed_header_byte_fails_the_envelope_hash(keys: dict[str, KeyPair]) -> None:
    envelope = _sent(keys)
    disclosed = _disclosed_by_b(keys, envelope)
    for index in (0, len(disclosed.header) // 2, len(disclosed.header) - 1):
        changed = replace(disclosed, header=flip(disclosed.header, index))
        assert _step(keys, envelope.hash, changed) == "envelope-hash"


def test_a_changed_ciphertext_byte_fails_the_envelope_hash(keys: dict[str, KeyPair]) -> None:
    envelope = _sent(keys)
    disclosed = _disclosed_by_b(keys, envelope)
    changed = replace(disclosed, cipher_text=flip(disclosed.cipher_text, 3))
    assert _step(keys, envelope.hash, changed) == "envelope-hash"
    assert _step(keys, _sent(keys).hash, disclosed) == "envelope-hash"  # another tx's hash


def test_a_wrapped_key_of_another_transaction_does_not_unwrap(keys: dict[str, KeyPair]) -> None:
    first, second = _sent(keys, b"first"), _sent(keys, b"second")
    disclosed_first = _disclosed_by_b(keys, first)
    disclosed_second = _disclosed_by_b(keys, second)
    moved = replace(
        disclosed_first,
        wrapped_nonce=disclosed_second.wrapped_nonce,
        wrapped_key=disclosed_second.wrapped_key,
    )
    assert _step(keys, first.hash, moved) == "key-unwrap"
    tampered = replace(disclosed_first, wrapped_key=flip(disclosed_first.wrapped_key, 0))
    assert _step(keys, first.hash, tampered) == "key-unwrap"


def test_a_wrong_recipient_key_does_not_unwrap(keys: dict[str, KeyPair]) -> None:
    envelope = _sent(keys)
    disclosed = _disclosed_by_b(keys, envelope)
    for private in (keys["other"].private, keys["a"].private, keys["b"].private):
        with pytest.raises(DisclosureCheckFailed) as failure:
            open_disclosed(private, envelope.hash, disclosed)
        assert failure.value.step == "key-unwrap"
    # The other key claimed as recipient: the wrap was made for the regulator's key.
    relabelled = replace(disclosed, recipient=keys["other"].public)
    with pytest.raises(DisclosureCheckFailed) as failure:
        open_disclosed(keys["other"].private, envelope.hash, relabelled)
    assert failure.value.step == "key-unwrap"
    # A discloser key changed: the pairwise key differs.
    with pytest.raises(DisclosureCheckFailed) as failure:
        open_disclosed(
            keys["regulator"].private, envelope.hash, replace(disclosed, discloser=keys["c"].public)
        )
    assert failure.value.step == "key-unwrap"


def test_a_key_that_unwraps_but_is_not_committed_fails(keys: dict[str, KeyPair]) -> None:
    """A discloser that wraps another key than the committed one is caught."""
    envelope = _sent(keys)
    disclosed = _disclosed_by_b(keys, envelope)
    b, regulator = keys["b"], keys["regulator"]
    pairwise = derive_pairwise(b.private, b.public, regulator.public, DISCLOSURE_INFO)
    nonce = os.urandom(24)
    forged = replace(
        disclosed,
        wrapped_nonce=nonce,
        wrapped_key=wrap_key(pairwise, nonce, os.urandom(32), envelope.hash),
    )
    assert _step(keys, envelope.hash, forged) == "key-commitment"


def test_a_ciphertext_that_does_not_open_fails_decrypt(keys: dict[str, KeyPair]) -> None:
    """Constructible only by the sender: a committed key and a hash over a bad ciphertext."""
    envelope = _sent(keys)
    broken_text = flip(envelope.cipher_text, 0)
    broken = replace(envelope, cipher_text=broken_text)  # header and boxes unchanged
    b = keys["b"]
    disclosed = Enclave([b]).disclose(broken, b.public, keys["regulator"].public)
    assert disclosed.payload_hash == transaction_hash(envelope.header_bytes, broken_text)
    assert _step(keys, disclosed.payload_hash, disclosed) == "decrypt"


def test_keyed_and_version1_envelopes_cannot_be_disclosed(keys: dict[str, KeyPair]) -> None:
    a, b, regulator = keys["a"], keys["b"], keys["regulator"]
    enclave = Enclave([a])
    raw = enclave.encrypt_raw(b"raw", a.public)  # no recipients: keyed
    keyed = enclave.wrap_raw(raw, [b.public], SendMetadata())
    assert isinstance(keyed, EncodedPayload) and keyed.keyed_terms is not None
    with pytest.raises(BadRequest, match="not under its hash"):
        enclave.disclose(keyed, a.public, regulator.public)
    v1 = EncodedPayloadV1(
        sender_key=a.public,
        cipher_text=os.urandom(40),
        cipher_text_nonce=os.urandom(24),
        recipient_boxes=(os.urandom(48),),
        recipient_nonce=os.urandom(24),
        recipient_keys=(b.public,),
    )
    with pytest.raises(BadRequest, match="not under its hash"):
        enclave.disclose(v1, a.public, regulator.public)
    # A bundle built by hand around a keyed header fails the terms step offline.
    fake = replace(
        _disclosed_by_b(keys, _sent(keys)), header=keyed.header_bytes, cipher_text=keyed.cipher_text
    )
    assert _step(keys, keyed.hash, fake) == "terms"


def test_only_a_party_discloses_and_bad_recipients_are_refused(keys: dict[str, KeyPair]) -> None:
    envelope = _sent(keys)
    c = keys["c"]
    with pytest.raises(NotFound):
        Enclave([c]).disclose(envelope, c.public, keys["regulator"].public)
    b = keys["b"]
    for bad in (bytes(32), bytes([1]) + bytes(31)):  # low-order points
        with pytest.raises(BadRequest):
            Enclave([b]).disclose(envelope.for_recipients({b.public}), b.public, bad)


def test_binding_proves_the_discloser_vouches_for_the_signer(keys: dict[str, KeyPair]) -> None:
    disclosed = _disclosed_by_b(keys, _sent(keys))
    regulator = keys["regulator"]
    assert check_binding(regulator.private, disclosed)
    assert not check_binding(keys["other"].private, disclosed)
    assert not check_binding(regulator.private, replace(disclosed, signer=os.urandom(32)))
    assert not check_binding(regulator.private, replace(disclosed, discloser=keys["a"].public))
    assert not check_binding(regulator.private, replace(disclosed, binding=os.urandom(32)))


def test_disclosure_and_commitment_signatures_are_separated(keys: dict[str, KeyPair]) -> None:
    b = keys["b"]
    enclave = Enclave([b])
    digest = os.urandom(32)
    signer, signature = enclave.sign_disclosure(b.public, digest)
    assert signer == enclave.identities[b.public]
    assert verify_disclosure_signature(signer, signature, digest)
    assert not verify_disclosure_signature(signer, signature, os.urandom(32))
    assert not verify_disclosure_signature(os.urandom(32), signature, digest)
    assert disclosure_signed_bytes(digest) == DISCLOSURE_DOMAIN + digest
    with pytest.raises(DisclosureFormatError):
        disclosure_signed_bytes(b"short")
    assert not verify_disclosure_signature(signer, signature, b"short")

    claim = CommitmentClaim(1337, os.urandom(32), 7, os.urandom(32), os.urandom(32), b.public)
    commitment = enclave.sign_claim(claim)
    # A disclosure signature never passes as a commitment ...
    assert not commitments.verify(GroupCommitment(claim, signer, signature))
    # ... even over a digest taken from the commitment's own bytes, and vice versa.
    for digest_of_claim in (claim.signed_bytes(signer)[:32], claim.signed_bytes(signer)[-32:]):
        d_signer, d_signature = enclave.sign_disclosure(b.public, digest_of_claim)
        assert not commitments.verify(GroupCommitment(claim, d_signer, d_signature))
        assert not verify_disclosure_signature(signer, commitment.signature, digest_of_claim)
    assert commitments.verify(commitment)
    with pytest.raises(NotFound):
        enclave.sign_disclosure(keys["c"].public, digest)
