"""The privacy fields of a transaction request (GoQuorum's ``privateFor``, ``privateFrom``,
``privacyFlag``) as one typed value, and the errors a private request can meet."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from quorum_node.errors import QuorumNodeError
from tx_manager.client import privacy_group_id

SUPPORTED_PRIVACY_FLAGS = (0,)


class PrivacyError(QuorumNodeError):
    """A private transaction cannot be sent as asked (JSON-RPC -32000)."""


class InvalidPrivacyParams(QuorumNodeError):
    """privateFor, privateFrom or privacyFlag are malformed (JSON-RPC -32602)."""


@dataclass(frozen=True)
class PrivacyParams:
    private_for: tuple[str, ...]
    private_from: str | None
    privacy_flag: int

    def parties(self, default_from: str) -> list[str]:
        """privateFrom (the manager's default key when absent) and privateFor."""
        return [self.private_from or default_from, *self.private_for]

    def group_id(self, default_from: str) -> bytes:
        """The party group the transaction executes in (``tx_manager``'s same id)."""
        return privacy_group_id([base64.b64decode(key) for key in self.parties(default_from)])


def manager_key(value: Any, what: str) -> str:
    """A base64 X25519 manager key, or ``InvalidPrivacyParams`` naming ``what``."""
    if not isinstance(value, str):
        raise InvalidPrivacyParams(f"{what}: expected a base64 manager public key")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidPrivacyParams(f"{what}: {value!r} is not base64") from None
    if len(raw) != 32:
        raise InvalidPrivacyParams(f"{what}: {value!r} is not a 32-byte key")
    return value


def parse_privacy(fields: dict[str, Any] | None) -> PrivacyParams | None:
    """The privacy fields of a transaction request, or None for a public transaction.

    As in GoQuorum, the presence of ``privateFor`` (even empty) makes it private.
    """
    if not fields or "privateFor" not in fields:
        if fields and ("privateFrom" in fields or "privacyFlag" in fields):
            raise InvalidPrivacyParams("privateFrom and privacyFlag need privateFor")
        return None
    private_for = fields["privateFor"]
    if not isinstance(private_for, list):
        raise InvalidPrivacyParams("privateFor: expected a list of base64 manager keys")
    flag = fields.get("privacyFlag", 0)
    if not isinstance(flag, int) or isinstance(flag, bool):
        raise InvalidPrivacyParams("privacyFlag: expected a number")
    if flag not in SUPPORTED_PRIVACY_FLAGS:
        raise InvalidPrivacyParams(
            f"privacyFlag {flag} is not supported yet: only 0 (standard private) is"
        )
    private_from = fields.get("privateFrom")
    return PrivacyParams(
        private_for=tuple(manager_key(k, f"privateFor[{i}]") for i, k in enumerate(private_for)),
        private_from=None if private_from is None else manager_key(private_from, "privateFrom"),
        privacy_flag=flag,
    )


def parties_text(keys_b64: Sequence[str]) -> str:
    return ", ".join(sorted(keys_b64))
