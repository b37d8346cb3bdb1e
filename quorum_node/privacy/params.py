"""The privacy fields of a transaction request (GoQuorum's ``privateFor``, ``privateFrom``,
``privacyFlag``, ``mandatoryFor``) as one typed value, and the errors a private request
can meet. The checks that need no state are here, with GoQuorum's messages
(``internal/ethapi/api.go``, ``checkAndHandlePrivateTransaction``); the checks against a
target contract's flag are in ``privacy.flags``."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from quorum_node.errors import QuorumNodeError
from tx_manager.client import privacy_group_id

#: GoQuorum's privacy flags: 0 standard private, 1 party protection, 2 mandatory
#: recipients, 3 private state validation (``private/engine/common.go``).
STANDARD_PRIVATE = 0
PARTY_PROTECTION = 1
MANDATORY_RECIPIENTS = 2
STATE_VALIDATION = 3
SUPPORTED_PRIVACY_FLAGS = (
    STANDARD_PRIVATE,
    PARTY_PROTECTION,
    MANDATORY_RECIPIENTS,
    STATE_VALIDATION,
)


class PrivacyError(QuorumNodeError):
    """A private transaction cannot be sent as asked (JSON-RPC -32000)."""


class InvalidPrivacyParams(QuorumNodeError):
    """privateFor, privateFrom or privacyFlag are malformed (JSON-RPC -32602)."""


@dataclass(frozen=True)
class PrivacyParams:
    private_for: tuple[str, ...]
    private_from: str | None
    privacy_flag: int
    mandatory_for: tuple[str, ...] = ()
    """GoQuorum's ``mandatoryFor`` (flag 2 only): keys every later transaction to the
    contract must include."""

    def parties(self, default_from: str) -> list[str]:
        """privateFrom (the manager's default key when absent) and privateFor."""
        return [self.private_from or default_from, *self.private_for]

    def group_id(self, default_from: str) -> bytes:
        """The party group the transaction executes in (``tx_manager``'s same id)."""
        return privacy_group_id([base64.b64decode(key) for key in self.parties(default_from)])

    def check_mandatory_among_parties(self, default_from: str) -> None:
        """Refuse mandatory recipients outside the parties (Tessera's check, in
        ``PrivacyHelperImpl.validateSendRequest``), before anything is sent."""
        outside = set(self.mandatory_for) - set(self.parties(default_from))
        if outside:
            raise PrivacyError(
                "One or more mandatory recipients not included in the participant list: "
                + parties_text(list(outside))
            )


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
        needs_private_for = ("privateFrom", "privacyFlag", "mandatoryFor")
        if fields and any(name in fields for name in needs_private_for):
            raise InvalidPrivacyParams("privateFrom, privacyFlag and mandatoryFor need privateFor")
        return None
    private_for = fields["privateFor"]
    if not isinstance(private_for, list):
        raise InvalidPrivacyParams("privateFor: expected a list of base64 manager keys")
    flag = fields.get("privacyFlag", 0)
    if not isinstance(flag, int) or isinstance(flag, bool):
        raise InvalidPrivacyParams("privacyFlag: expected a number")
    if flag not in SUPPORTED_PRIVACY_FLAGS:
        raise InvalidPrivacyParams(f"invalid privacy flag: privacyFlag {flag} is not 0, 1, 2 or 3")
    mandatory_for = fields.get("mandatoryFor") or []
    if not isinstance(mandatory_for, list):
        raise InvalidPrivacyParams("mandatoryFor: expected a list of base64 manager keys")
    if flag == MANDATORY_RECIPIENTS and not mandatory_for:
        raise PrivacyError(
            "missing mandatory recipients data. if no mandatory recipients required "
            "consider using PrivacyFlag=1(PartyProtection)"
        )
    if flag != MANDATORY_RECIPIENTS and mandatory_for:
        raise PrivacyError(
            "privacy metadata invalid. mandatory recipients are only applicable for "
            "PrivacyFlag=2(MandatoryRecipients)"
        )
    private_from = fields.get("privateFrom")
    return PrivacyParams(
        private_for=tuple(manager_key(k, f"privateFor[{i}]") for i, k in enumerate(private_for)),
        private_from=None if private_from is None else manager_key(private_from, "privateFrom"),
        privacy_flag=flag,
        mandatory_for=tuple(
            sorted({manager_key(k, f"mandatoryFor[{i}]") for i, k in enumerate(mandatory_for)})
        ),
    )


def parties_text(keys_b64: Sequence[str]) -> str:
    return ", ".join(sorted(keys_b64))
