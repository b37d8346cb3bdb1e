"""Field types shared by every version of the stored and pushed formats.

Sizes, strict base64, privacy flags and the privacy group id. Both the frozen
version-1 codec (``payload_v1``) and the current one (``payload``) build on
these, so neither imports the other's types.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from enum import IntEnum

from quorum_shared.json_fields import hex_bytes
from tx_manager.errors import BadRequest, EnvelopeDecodeError

KEY_SIZE = 32
NONCE_SIZE = 24
TAG_SIZE = 16
BOX_SIZE = KEY_SIZE + TAG_SIZE
HASH_SIZE = 64
MASTER_KEY_SIZE = 32

ENVELOPE_MAGIC = b"QTME"
RAW_MAGIC = b"QTMR"


class PrivacyMode(IntEnum):
    """GoQuorum's privacyFlag values; any other value is refused."""

    STANDARD = 0
    PARTY_PROTECTION = 1
    MANDATORY_RECIPIENTS = 2
    PRIVATE_STATE_VALIDATION = 3


def b64encode(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def b64decode(value: object, what: str) -> bytes:
    """Strict standard base64 (as Tessera's JSON uses); typed error on anything else."""
    if not isinstance(value, str):
        raise BadRequest(f"{what} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"{what} is not valid base64") from exc


def b64_list(value: object, what: str) -> tuple[bytes, ...]:
    if not isinstance(value, list):
        raise BadRequest(f"{what} must be a list of base64 strings")
    return tuple(b64decode(item, what) for item in value)


def hex_field(obj: dict[str, object], name: str, size: int = 32) -> bytes:
    """Field ``name`` of a JSON object: exactly ``size`` bytes as 0x-prefixed hex."""
    return hex_bytes(obj.get(name), name, size, BadRequest)


def parse_privacy_mode(value: object) -> PrivacyMode:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest("privacyFlag must be an integer 0..3")
    try:
        return PrivacyMode(value)
    except ValueError as exc:
        raise BadRequest(f"privacyFlag {value} is not one of 0, 1, 2, 3") from exc


def privacy_group_id(keys: list[bytes] | tuple[bytes, ...]) -> bytes:
    """Id of the party group privateFrom ∪ privateFor: SHA3-256 of the sorted, deduplicated keys.

    The node uses this same function, so both sides agree on group ids.
    """
    return hashlib.sha3_256(b"".join(sorted(set(keys)))).digest()


def check_key(key: bytes, what: str) -> None:
    if len(key) != KEY_SIZE:
        raise EnvelopeDecodeError(f"{what} must be {KEY_SIZE} bytes, got {len(key)}")


def check_nonce(nonce: bytes, what: str) -> None:
    if len(nonce) != NONCE_SIZE:
        raise EnvelopeDecodeError(f"{what} nonce must be {NONCE_SIZE} bytes")


def check_boxes(keys: tuple[bytes, ...], boxes: tuple[bytes, ...]) -> None:
    """One 48-byte box per recipient key, keys 32 bytes and unique."""
    if len(boxes) != len(keys):
        raise EnvelopeDecodeError(f"{len(boxes)} boxes for {len(keys)} recipient keys")
    if len(set(keys)) != len(keys):
        raise EnvelopeDecodeError("recipient keys repeat")
    for key in keys:
        check_key(key, "recipient key")
    for box in boxes:
        if len(box) != BOX_SIZE:
            raise EnvelopeDecodeError(f"recipient box must be {BOX_SIZE} bytes")


def boxes_added(
    keys: tuple[bytes, ...],
    boxes: tuple[bytes, ...],
    other_keys: tuple[bytes, ...],
    other_boxes: tuple[bytes, ...],
) -> tuple[tuple[bytes, ...], tuple[bytes, ...]] | None:
    """``keys``/``boxes`` plus the boxes of ``other_keys`` they lack (a second push of
    the same transaction to a manager that holds several keys); None if nothing is new.
    Whether the merge is allowed at all is each envelope version's own check."""
    merged_keys = list(keys)
    merged_boxes = list(boxes)
    for key, box in zip(other_keys, other_boxes, strict=True):
        if key not in merged_keys:
            merged_keys.append(key)
            merged_boxes.append(box)
    if len(merged_keys) == len(keys):
        return None
    return tuple(merged_keys), tuple(merged_boxes)
