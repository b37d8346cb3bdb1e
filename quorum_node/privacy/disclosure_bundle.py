"""The disclosure bundles: what a party hands a third party (a regulator, an auditor, a
court) to show a past private transaction, or a party group's whole history up to a
height, with what it takes to check it without trusting the party.

Two kinds, both JSON:

* ``quorum-py/disclosure/transaction/v1``: one transaction: where it is on chain, its
  64-byte payload hash, the envelope (header and ciphertext, which hash to that payload
  hash), the transaction's key sealed for the recipient, and the private receipt as the
  discloser computed it.
* ``quorum-py/disclosure/group/v1``: every transaction of a group up to height H in
  chain order, each as above, the discloser's group root after each block that changed
  it (so a verifier can say where its replay departs), and every member's signed
  commitment of the group root at H (so the replay is checked against all members, not
  only the discloser).

The discloser signs SHA-256 of the canonical JSON of everything but ``signature`` with
its identity key (the one of its group commitments), under a domain of its own.
``envelope`` is ``tx_manager.disclosure.DisclosedEnvelope``'s JSON, kept as is here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from quorum_shared.json_fields import hex_bytes

TRANSACTION_KIND = "quorum-py/disclosure/transaction/v1"
GROUP_KIND = "quorum-py/disclosure/group/v1"


def canonical(document: dict[str, Any]) -> bytes:
    """One byte string per document: sorted keys, no spaces, UTF-8."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def bundle_digest(bundle: dict[str, Any]) -> bytes:
    """What the discloser signs: SHA-256 of the bundle without its signature."""
    return hashlib.sha256(
        canonical({key: value for key, value in bundle.items() if key != "signature"})
    ).digest()


@dataclass(frozen=True)
class DisclosedTransaction:
    """One private transaction as a bundle lists it."""

    block_number: int
    block_hash: bytes
    transaction_hash: bytes
    transaction_index: int
    payload_hash: bytes
    envelope: dict[str, Any]
    receipt: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "blockNumber": self.block_number,
            "blockHash": "0x" + self.block_hash.hex(),
            "transactionHash": "0x" + self.transaction_hash.hex(),
            "transactionIndex": self.transaction_index,
            "payloadHash": "0x" + self.payload_hash.hex(),
            "envelope": self.envelope,
            "receipt": self.receipt,
        }

    @classmethod
    def from_json(cls, raw: Any) -> DisclosedTransaction:
        body = _object(raw, "transaction")
        return cls(
            block_number=_integer(body, "blockNumber"),
            block_hash=_hex(body, "blockHash", 32),
            transaction_hash=_hex(body, "transactionHash", 32),
            transaction_index=_integer(body, "transactionIndex"),
            payload_hash=_hex(body, "payloadHash", 64),
            envelope=_object(body.get("envelope"), "envelope"),
            receipt=_object(body.get("receipt"), "receipt"),
        )


class BundleFormatError(ValueError):
    """A bundle is not well formed: a field is missing or of the wrong type or size."""


def _object(raw: Any, what: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise BundleFormatError(f"{what} must be a JSON object")
    return raw


def _integer(body: dict[str, Any], name: str) -> int:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BundleFormatError(f"{name} must be a non-negative integer")
    return value


def _hex(body: dict[str, Any], name: str, size: int) -> bytes:
    return hex_bytes(body.get(name), name, size, BundleFormatError)


def parse_transaction_bundle(raw: Any) -> tuple[dict[str, Any], DisclosedTransaction]:
    bundle = _object(raw, "bundle")
    if bundle.get("kind") != TRANSACTION_KIND:
        raise BundleFormatError(f"kind must be {TRANSACTION_KIND!r}")
    _integer(bundle, "chainId")
    _hex(bundle, "groupId", 32)
    return bundle, DisclosedTransaction.from_json(bundle.get("transaction"))


def parse_group_bundle(raw: Any) -> tuple[dict[str, Any], list[DisclosedTransaction]]:
    bundle = _object(raw, "bundle")
    if bundle.get("kind") != GROUP_KIND:
        raise BundleFormatError(f"kind must be {GROUP_KIND!r}")
    for name in ("chainId", "height"):
        _integer(bundle, name)
    _hex(bundle, "groupId", 32)
    _hex(bundle, "blockHash", 32)
    for name in ("transactions", "roots", "commitments", "members"):
        if not isinstance(bundle.get(name), list):
            raise BundleFormatError(f"{name} must be a list")
    return bundle, [DisclosedTransaction.from_json(item) for item in bundle["transactions"]]
