"""Frozen encodings: what is on disk today must stay readable after any codec change.

If a codec change breaks these, add a new version and keep decoding the old
ones; never edit these vectors. The ``*_REAL`` and v2 samples were sealed with
real crypto under fixed keys (private keys bytes 1..32 for the sender, 33..64
for the recipient), so they also freeze the hash, the key commitment, the
associated data, the header MAC and the box derivation: a stored envelope must
keep decrypting, and its hash must keep matching what is on chain.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.tx_manager.conftest import Manager, ManagerFactory, http
from tx_manager.enclave import Enclave, keypair_from_private
from tx_manager.payload import (
    EncodedPayload,
    EncodedPayloadV1,
    HeaderBinding,
    PrivacyMode,
    RawTransaction,
    RawTransactionV1,
    b64encode,
    decode_envelope,
    decode_raw,
)
from tx_manager.store import SqliteStore

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
# Written by version-1 code (main before envelope v2): "frozen v1 payload", sender -> recipient.
ENVELOPE_V1_REAL = bytes.fromhex(
    "51544d450107a37cbc142093c8b755dc1b10e86cb426374ad16aa853ed0bdfc0b2b86d1c7c000000210d8b18"
    "e29409c2affcee95ec6e6aa0578e498c0942aa42f41d4ac7430b154c22485656565656565656565656565656"
    "56565656565656565656000000020000003013578cb92446ffa000f322be3771afc69f9d3e00384b4b899b5f"
    "11e5c4938b07bc1470f53a3ba21347dd980b3f65c5a100000030aba040f0685ff3b0e15521044d02486e3376"
    "50d4dfea8d8e0df133c59db62343886acf1992c1a000b9b24685c67a7cfc5757575757575757575757575757"
    "57575757575757575757000000020000002007a37cbc142093c8b755dc1b10e86cb426374ad16aa853ed0bdf"
    "c0b2b86d1c7c000000205869aff450549732cbaaed5e5df9b30a6da31cb0e5742bad5ad4a1a768f1a67b0000"
    "0000000000000000000000000000020000002007a37cbc142093c8b755dc1b10e86cb426374ad16aa853ed0b"
    "dfc0b2b86d1c7c000000205869aff450549732cbaaed5e5df9b30a6da31cb0e5742bad5ad4a1a768f1a67b95"
    "a71b61"
)
# Version 2, hashed header: "frozen v2 payload", flag 2 (mandatory: the recipient), exec hash
# "X" * 32, one affected contract transaction ("H" * 64 -> "S" * 32).
ENVELOPE_V2_HASHED = bytes.fromhex(
    "51544d45020000016751544d48020107a37cbc142093c8b755dc1b10e86cb426374ad16aa853ed0bdfc0b2b8"
    "6d1c7c000000020000002007a37cbc142093c8b755dc1b10e86cb426374ad16aa853ed0bdfc0b2b86d1c7c00"
    "0000205869aff450549732cbaaed5e5df9b30a6da31cb0e5742bad5ad4a1a768f1a67b020000000100000020"
    "5869aff450549732cbaaed5e5df9b30a6da31cb0e5742bad5ad4a1a768f1a67b000000205858585858585858"
    "5858585858585858585858585858585858585858585858580000000200000040484848484848484848484848"
    "4848484848484848484848484848484848484848484848484848484848484848484848484848484848484848"
    "4848484848484848000000205353535353535353535353535353535353535353535353535353535353535353"
    "4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4ebc6525d5a5ae23dd1d41e2f9d211defa795c776b"
    "ce95d2e6068ff5502782640f57aad81800000021b96f7ec0ee7bbafd51a1f948a3e620d59a664ea76e6ac4ce"
    "76fec8f74cbe53ead70000000000000000525252525252525252525252525252525252525252525252000000"
    "020000002007a37cbc142093c8b755dc1b10e86cb426374ad16aa853ed0bdfc0b2b86d1c7c000000205869af"
    "f450549732cbaaed5e5df9b30a6da31cb0e5742bad5ad4a1a768f1a67b0000000200000030328596007eda48"
    "540612a5f4e6ddd1b030b946c55d39cabd7072a3d3cf20d2eb83ebebbde519351e7e8189ff6f5c25bb000000"
    "30802d279de44050d835f539eb7725d8cc401e512ce28180f0f14ae32ea4189cbf33bdda74db4957edbca399"
    "089a4f7ebd8ad017d2"
)
ENVELOPE_V2_HASHED_HASH = bytes.fromhex(
    "d9f14c8fd827f3cb9542ac7f9c276d8df5a1ffbb9bd79781ae9dfe51ad9e60cc160e3664f3c6485d095f85a9"
    "9cd4535b0274c1ba302355cad9e88b7fa3684e88"
)
# Version 2, keyed header (a raw transaction sent later): "frozen keyed payload", flag 1.
ENVELOPE_V2_KEYED = bytes.fromhex(
    "51544d45020000006251544d48020207a37cbc142093c8b755dc1b10e86cb426374ad16aa853ed0bdfc0b2b8"
    "6d1c7c4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4bbc6525d5a5ae23dd1d41e2f9d211defa79"
    "5c776bce95d2e6068ff5502782640f0a4dd12f0000002463b7f720cdec933ad4bfb99a35f7541e55c2f2ec37"
    "a555e9d46fce25b9316da9c2a88f400000006251544d5402000000020000002007a37cbc142093c8b755dc1b"
    "10e86cb426374ad16aa853ed0bdfc0b2b86d1c7c000000205869aff450549732cbaaed5e5df9b30a6da31cb0"
    "e5742bad5ad4a1a768f1a67b01000000000000000000000000671f29dc000000203d0b271ad9b40eac9d193a"
    "f100e8323b69f2c8ce67219debe1485d6b7a9206515151515151515151515151515151515151515151515151"
    "51000000020000002007a37cbc142093c8b755dc1b10e86cb426374ad16aa853ed0bdfc0b2b86d1c7c000000"
    "205869aff450549732cbaaed5e5df9b30a6da31cb0e5742bad5ad4a1a768f1a67b0000000200000030794569"
    "3e39254c3cc8c9e5d2604cac6e45e63df156ddb910821c89b767466cf2b39202414b76122ad4eb1873a95999"
    "9e00000030d5349fa7347ddbc2d08f84b75752e2a418a8a96e6ef2cf4dd6f8f1e836b402bdc9c87c7d3397b4"
    "f970bdeaf8499e61f6b74203ef"
)
ENVELOPE_V2_KEYED_HASH = bytes.fromhex(
    "2f10d54faa3f4a820b88d91aff1214376747e22408010cd81ad032e8dc6f0cd349991e6821d4559c0f07b5eb"
    "640549c871676382e48c3e4d869ff38ce1c5df98"
)
# The raw transaction ENVELOPE_V2_KEYED was sent from (same header and ciphertext, same hash).
RAW_V2_KEYED = bytes.fromhex(
    "51544d52020000006251544d48020207a37cbc142093c8b755dc1b10e86cb426374ad16aa853ed0bdfc0b2b8"
    "6d1c7c4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4bbc6525d5a5ae23dd1d41e2f9d211defa79"
    "5c776bce95d2e6068ff5502782640f0a4dd12f0000002463b7f720cdec933ad4bfb99a35f7541e55c2f2ec37"
    "a555e9d46fce25b9316da9c2a88f407945693e39254c3cc8c9e5d2604cac6e45e63df156ddb910821c89b767"
    "466cf2b39202414b76122ad4eb1873a959999e51515151515151515151515151515151515151515151515150"
    "ae1d7a"
)

SENDER = keypair_from_private(bytes(range(1, 33)))
RECIPIENT = keypair_from_private(bytes(range(33, 65)))


def test_envelope_v1_still_decodes() -> None:
    envelope = decode_envelope(ENVELOPE_V1)
    assert isinstance(envelope, EncodedPayloadV1)
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
    raw = decode_raw(RAW_V1)
    assert isinstance(raw, RawTransactionV1)
    assert (raw.sender_key, raw.cipher_text, raw.sender_box) == (
        bytes(range(32)),
        b"C" * 20,
        b"B" * 48,
    )
    assert raw.to_bytes() == RAW_V1


def test_real_v1_envelope_still_decrypts_for_both_parties() -> None:
    envelope = decode_envelope(ENVELOPE_V1_REAL)
    assert isinstance(envelope, EncodedPayloadV1)
    for keypair in (SENDER, RECIPIENT):
        assert Enclave([keypair]).decrypt(envelope) == b"frozen v1 payload"
    Enclave([RECIPIENT]).verify_incoming(envelope.for_recipients({RECIPIENT.public}))
    assert envelope.to_bytes() == ENVELOPE_V1_REAL


def test_hashed_v2_envelope_decodes_decrypts_and_keeps_its_hash() -> None:
    envelope = decode_envelope(ENVELOPE_V2_HASHED)
    assert isinstance(envelope, EncodedPayload)
    assert envelope.hash == ENVELOPE_V2_HASHED_HASH
    assert envelope.header_binding is HeaderBinding.HASHED
    assert envelope.sender_key == SENDER.public
    assert envelope.group_keys == tuple(sorted([SENDER.public, RECIPIENT.public]))
    assert envelope.privacy_mode is PrivacyMode.MANDATORY_RECIPIENTS
    assert envelope.mandatory_recipients == (RECIPIENT.public,)
    assert envelope.exec_hash == b"X" * 32
    assert envelope.affected_contract_transactions == ((b"H" * 64, b"S" * 32),)
    assert envelope.cipher_text_nonce == b"N" * 24
    for keypair in (SENDER, RECIPIENT):
        assert Enclave([keypair]).decrypt(envelope) == b"frozen v2 payload"
    Enclave([RECIPIENT]).verify_incoming(envelope.for_recipients({RECIPIENT.public}))
    assert envelope.to_bytes() == ENVELOPE_V2_HASHED
    assert EncodedPayload.from_json(json.loads(json.dumps(envelope.to_json()))) == envelope


def test_keyed_v2_envelope_and_its_raw_transaction() -> None:
    envelope = decode_envelope(ENVELOPE_V2_KEYED)
    assert isinstance(envelope, EncodedPayload)
    assert envelope.hash == ENVELOPE_V2_KEYED_HASH
    assert envelope.header_binding is HeaderBinding.KEYED
    assert envelope.privacy_mode is PrivacyMode.PARTY_PROTECTION
    assert Enclave([RECIPIENT]).decrypt(envelope) == b"frozen keyed payload"
    Enclave([RECIPIENT]).verify_incoming(envelope.for_recipients({RECIPIENT.public}))
    assert envelope.to_bytes() == ENVELOPE_V2_KEYED
    raw = decode_raw(RAW_V2_KEYED)
    assert isinstance(raw, RawTransaction)
    assert raw.hash == ENVELOPE_V2_KEYED_HASH
    assert Enclave([SENDER]).open_raw(raw) == b"frozen keyed payload"
    assert raw.to_bytes() == RAW_V2_KEYED


async def test_store_reads_rows_written_by_version_1(tmp_path: Path) -> None:
    """A database written before version 2 (no envelope_bodies table) opens and serves."""
    path = tmp_path / "tm.db"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE envelopes (hash BLOB PRIMARY KEY, data BLOB NOT NULL);"
        "CREATE TABLE raw_transactions (hash BLOB PRIMARY KEY, data BLOB NOT NULL);"
        "PRAGMA user_version=1;"
    )
    v1 = decode_envelope(ENVELOPE_V1_REAL)
    old.execute("INSERT INTO envelopes VALUES (?, ?)", (v1.hash, ENVELOPE_V1_REAL))
    old.commit()
    old.close()
    store = SqliteStore(path)
    try:
        stored = await store.find_envelope(v1.hash)
        assert stored == v1
        assert Enclave([RECIPIENT]).decrypt(stored) == b"frozen v1 payload"
        v2 = decode_envelope(ENVELOPE_V2_HASHED)
        await store.save_envelopes([v2])
        assert await store.count_envelopes() == 2
    finally:
        await store.close()


# -- through a real manager process holding the recipient key ---------------------------


def _install_fixed_key(manager: Manager) -> None:
    name = manager.name
    (manager.directory / f"{name}.pub").write_text(b64encode(RECIPIENT.public) + "\n")
    key_path = manager.directory / f"{name}.key"
    key_path.write_text(
        json.dumps({"type": "unlocked", "data": {"bytes": b64encode(RECIPIENT.private)}})
    )
    key_path.chmod(0o600)
    manager.public_key = b64encode(RECIPIENT.public)


@pytest.fixture(scope="module")
def old_data_manager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Manager]:
    """A manager started on a database that version-1 code wrote (one v1 envelope)."""
    factory = ManagerFactory(tmp_path_factory.mktemp("compat"))
    try:
        manager = factory.create("old")
        _install_fixed_key(manager)
        connection = sqlite3.connect(manager.db_path)
        connection.executescript(
            "CREATE TABLE envelopes (hash BLOB PRIMARY KEY, data BLOB NOT NULL);"
            "CREATE TABLE raw_transactions (hash BLOB PRIMARY KEY, data BLOB NOT NULL);"
            "PRAGMA user_version=1;"
        )
        v1 = decode_envelope(ENVELOPE_V1_REAL)
        connection.execute("INSERT INTO envelopes VALUES (?, ?)", (v1.hash, ENVELOPE_V1_REAL))
        connection.commit()
        connection.close()
        yield manager.start()
    finally:
        factory.stop_all()


def _push(manager: Manager, data: bytes) -> tuple[int, str]:
    status, body, _ = http(
        "POST", manager.p2p + "/push", data, {"Content-Type": "application/octet-stream"}
    )
    return status, body.decode()


def _parties(manager: Manager, tx_hash: bytes) -> list[str]:
    status, body, _ = http("GET", f"{manager.q2t}/transaction/{tx_hash.hex()}")
    assert status == 200, body
    return sorted(json.loads(body)["parties"])


@pytest.mark.integration
def test_stored_v1_envelope_answers_receive(old_data_manager: Manager) -> None:
    v1 = decode_envelope(ENVELOPE_V1_REAL)
    status, body, _ = http("GET", f"{old_data_manager.q2t}/transaction/{v1.hash.hex()}")
    assert status == 200, body
    received = json.loads(body)
    assert base64.b64decode(received["payload"]) == b"frozen v1 payload"
    assert received["senderKey"] == b64encode(SENDER.public)
    assert sorted(received["parties"]) == sorted(b64encode(k) for k in v1.group_keys)


@pytest.mark.integration
def test_v1_push_from_an_old_peer_can_never_widen_its_group(old_data_manager: Manager) -> None:
    v1 = decode_envelope(ENVELOPE_V1_REAL)
    assert isinstance(v1, EncodedPayloadV1)
    own_copy = v1.for_recipients({RECIPIENT.public})
    assert _push(old_data_manager, own_copy.to_bytes())[0] == 201  # identical: accepted
    outsider = keypair_from_private(bytes(range(65, 97))).public
    widened = replace(own_copy, group_keys=tuple(sorted([*v1.group_keys, outsider])))
    status, message = _push(old_data_manager, widened.to_bytes())
    assert status == 409, message
    assert "groupKeys" in message
    reflagged = replace(own_copy, privacy_mode=PrivacyMode.PRIVATE_STATE_VALIDATION)
    assert _push(old_data_manager, reflagged.to_bytes())[0] == 409
    assert _parties(old_data_manager, v1.hash) == sorted(b64encode(k) for k in v1.group_keys)
    assert "refused a push" in old_data_manager.log_path.read_text()


@pytest.mark.integration
def test_new_v2_envelope_from_a_push_is_stored_beside_v1_data(old_data_manager: Manager) -> None:
    v2 = decode_envelope(ENVELOPE_V2_HASHED)
    assert _push(old_data_manager, v2.for_recipients({RECIPIENT.public}).to_bytes())[0] == 201
    assert _parties(old_data_manager, v2.hash) == sorted(b64encode(k) for k in v2.group_keys)
