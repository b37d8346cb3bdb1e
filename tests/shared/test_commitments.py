"""``quorum_shared.commitments``: what a signature covers, the JSON form, and bad input."""

from __future__ import annotations

import pytest

from quorum_shared.commitments import (
    CommitmentClaim,
    CommitmentFormatError,
    GroupCommitment,
    binding_tag,
    identity_public,
    identity_seed,
    sign,
    verify,
    verify_json,
)

PRIVATE = b"\x07" * 32
CLAIM = CommitmentClaim(1337, b"\x01" * 32, 20, b"\x02" * 32, b"\x03" * 32, b"\x04" * 32)


def test_identity_is_derived_from_the_manager_key_and_stable() -> None:
    seed = identity_seed(PRIVATE)
    assert seed == identity_seed(PRIVATE)
    assert seed != identity_seed(b"\x08" * 32)
    assert sign(CLAIM, seed).signer == identity_public(seed)


@pytest.mark.parametrize(
    "field", ["chainId", "groupId", "blockNumber", "blockHash", "root", "member", "signer"]
)
def test_changing_any_field_breaks_the_signature(field: str) -> None:
    as_json = sign(CLAIM, identity_seed(PRIVATE)).to_json()
    assert verify_json(as_json)
    value = as_json[field]
    if isinstance(value, int):
        as_json[field] = value + 1
    elif field == "member":
        as_json[field] = "BQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU="
    else:
        as_json[field] = "0x" + ("ff" * ((len(value) - 2) // 2))
    assert not verify_json(as_json)


def test_json_round_trip() -> None:
    commitment = sign(CLAIM, identity_seed(PRIVATE))
    assert GroupCommitment.from_json(commitment.to_json()) == commitment
    assert verify(commitment)


@pytest.mark.parametrize(
    "raw",
    [
        None,
        [],
        {},
        {"chainId": "1"},
        {**sign(CLAIM, identity_seed(PRIVATE)).to_json(), "root": "0x1234"},
        {**sign(CLAIM, identity_seed(PRIVATE)).to_json(), "member": "not base64!"},
        {**sign(CLAIM, identity_seed(PRIVATE)).to_json(), "blockNumber": True},
        {**sign(CLAIM, identity_seed(PRIVATE)).to_json(), "blockNumber": -1},
        {**sign(CLAIM, identity_seed(PRIVATE)).to_json(), "signature": "0xzz"},
    ],
)
def test_malformed_commitments_are_refused_clearly(raw: object) -> None:
    with pytest.raises(CommitmentFormatError):
        GroupCommitment.from_json(raw)
    assert verify_json(raw) is False


def test_binding_tag_depends_on_the_shared_key_member_and_signer() -> None:
    tag = binding_tag(b"k" * 32, b"m" * 32, b"s" * 32)
    assert tag == binding_tag(b"k" * 32, b"m" * 32, b"s" * 32)
    assert tag != binding_tag(b"K" * 32, b"m" * 32, b"s" * 32)
    assert tag != binding_tag(b"k" * 32, b"M" * 32, b"s" * 32)
    assert tag != binding_tag(b"k" * 32, b"m" * 32, b"S" * 32)
