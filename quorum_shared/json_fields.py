"""Reading fixed-size byte fields out of JSON, the same way wherever a wire format has
them (commitments, disclosed envelopes, bundles, the manager's messages). Each caller
names the exception its format raises, so a bad field is that format's error."""

from __future__ import annotations

from collections.abc import Callable


def hex_bytes(value: object, name: str, size: int, error: Callable[[str], Exception]) -> bytes:
    """``value`` as exactly ``size`` bytes of 0x-prefixed hex, else ``error(message)``."""
    if not isinstance(value, str) or not value.startswith("0x"):
        raise error(f"{name} must be 0x-prefixed hex of {size} bytes")
    try:
        decoded = bytes.fromhex(value[2:])
    except ValueError:
        raise error(f"{name} is not hex") from None
    if len(decoded) != size:
        raise error(f"{name} must be {size} bytes, got {len(decoded)}")
    return decoded
