"""Checking a disclosure bundle without trusting the party that made it
(``tx-manager verify-disclosure``; docs/disclosure.md).

Every step is named, so a failure says what does not hold:

- ``format``: the bundle is a well-formed bundle of a known kind;
- ``signature``: the discloser signed this very bundle with the identity key its manager
  key vouches for (the binding tag only the recipient and the discloser can compute);
- ``chain``: each transaction is in the public chain at the stated block and position,
  read through any node's ordinary JSON-RPC;
- ``payload-hash``: each transaction's data is the stated 64-byte payload hash;
- ``envelope-hash``, ``key-unwrap``, ``key-commitment``, ``decrypt``, ``terms``: the
  envelope hashes to it, the key sealed for the recipient opens, it is the key the
  envelope commits to, the payload decrypts, its execution terms are under the hash;
- ``group``: each transaction belongs to the bundle's party group;
- for a group history: ``order`` (chain order, nothing twice), ``commitments`` (every
  member signed the same root at the height, for this group, chain and block) and
  ``replay`` (replaying the history on a fresh state reproduces that root; otherwise the
  first block where the replay departs from the discloser's stated roots is named).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth.constants import BLANK_ROOT_HASH
from eth_abi import decode
from eth_hash.auto import keccak
from eth_typing import Address

from quorum_node.disclosure.replay import JsonRpc, ReplayStep, RpcFailure, replay
from quorum_node.privacy.disclosure_bundle import (
    GROUP_KIND,
    TRANSACTION_KIND,
    BundleFormatError,
    DisclosedTransaction,
    bundle_digest,
    parse_group_bundle,
    parse_transaction_bundle,
)
from quorum_shared.commitments import CommitmentFormatError, GroupCommitment, verify
from tx_manager.disclosure import (
    DisclosedEnvelope,
    DisclosureCheckFailed,
    check_binding,
    open_disclosed,
    verify_disclosure_signature,
)
from tx_manager.fields import privacy_group_id
from tx_manager.keyfile import decode_private_key

PRIVATE_V = (37, 38)


@dataclass
class Step:
    name: str
    ok: bool
    detail: str


@dataclass
class DecodedCall:
    transaction_hash: str
    to: str | None
    text: str


@dataclass
class Report:
    kind: str = ""
    steps: list[Step] = field(default_factory=list)
    calls: list[DecodedCall] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(step.ok for step in self.steps)

    @property
    def failed(self) -> Step | None:
        return next((step for step in self.steps if not step.ok), None)

    def passed(self, name: str, detail: str = "") -> None:
        self.steps.append(Step(name, True, detail))

    def fail(self, name: str, detail: str) -> Report:
        self.steps.append(Step(name, False, detail))
        return self

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "ok": self.ok,
            "steps": [{"step": s.name, "ok": s.ok, "detail": s.detail} for s in self.steps],
            "calls": [
                {"transactionHash": c.transaction_hash, "to": c.to, "call": c.text}
                for c in self.calls
            ],
        }


class _Failed(Exception):
    def __init__(self, step: str, detail: str) -> None:
        super().__init__(f"{step}: {detail}")
        self.step = step
        self.detail = detail


def verify_bundle(
    bundle: Any, recipient_private: bytes, rpc_url: str, abis: Sequence[list[Any]] = ()
) -> Report:
    """Every check of the module docstring, in order; the report stops at the first
    step that fails (later steps depend on it)."""
    report = Report()
    try:
        kind = bundle.get("kind") if isinstance(bundle, dict) else None
        report.kind = str(kind)
        if kind == TRANSACTION_KIND:
            _verify_transaction_bundle(report, bundle, recipient_private, JsonRpc(rpc_url), abis)
        elif kind == GROUP_KIND:
            _verify_group_bundle(report, bundle, recipient_private, JsonRpc(rpc_url), abis)
        else:
            return report.fail("format", f"unknown bundle kind {kind!r}")
    except _Failed as failure:
        return report.fail(failure.step, failure.detail)
    except (BundleFormatError, CommitmentFormatError) as exc:
        return report.fail("format", str(exc))
    except RpcFailure as exc:
        return report.fail("chain", str(exc))
    return report


# --- steps ----------------------------------------------------------------------------


def _envelopes(items: Sequence[DisclosedTransaction]) -> list[DisclosedEnvelope]:
    try:
        return [DisclosedEnvelope.from_json(item.envelope) for item in items]
    except (ValueError, KeyError, TypeError) as exc:
        raise _Failed("format", f"an envelope is malformed: {exc}") from None


def _check_signature(
    bundle: dict[str, Any], envelopes: list[DisclosedEnvelope], recipient_private: bytes
) -> None:
    signature = bundle.get("signature")
    if not isinstance(signature, dict):
        raise _Failed("signature", "the bundle is not signed")
    try:
        signer = bytes.fromhex(str(signature["signer"])[2:])
        signed = bytes.fromhex(str(signature["signature"])[2:])
        discloser = base64.b64decode(str(signature["key"]), validate=True)
    except (KeyError, ValueError) as exc:
        raise _Failed("signature", f"the signature is malformed: {exc}") from None
    if not verify_disclosure_signature(signer, signed, bundle_digest(bundle)):
        raise _Failed("signature", "the discloser's signature does not hold for this bundle")
    for envelope in envelopes:
        if envelope.discloser != discloser or envelope.signer != signer:
            raise _Failed("signature", "an envelope was disclosed by another key than the signer")
        if not check_binding(recipient_private, envelope):
            raise _Failed(
                "signature",
                "the discloser's manager key does not vouch for the signing key "
                "(binding tag), or this bundle was not made for this recipient",
            )


def _check_on_chain(rpc: JsonRpc, item: DisclosedTransaction) -> dict[str, Any]:
    tx_hash = "0x" + item.transaction_hash.hex()
    found = rpc.call("eth_getTransactionByHash", tx_hash)
    if found is None:
        raise _Failed("chain", f"transaction {tx_hash} is not in the chain")
    if found.get("blockNumber") is None:
        raise _Failed("chain", f"transaction {tx_hash} is not in a block yet")
    where = (int(found["blockNumber"], 16), found["blockHash"], int(found["transactionIndex"], 16))
    stated = (item.block_number, "0x" + item.block_hash.hex(), item.transaction_index)
    if where != stated:
        raise _Failed("chain", f"transaction {tx_hash} is at {where}, the bundle says {stated}")
    block = rpc.call("eth_getBlockByNumber", hex(item.block_number), False)
    if block is None or block["hash"] != stated[1]:
        raise _Failed("chain", f"block {item.block_number} of the chain is not {stated[1]}")
    if bytes.fromhex(found["input"][2:]) != item.payload_hash:
        raise _Failed("payload-hash", f"transaction {tx_hash}'s data is not the payload hash")
    if int(found["v"], 16) not in PRIVATE_V:
        raise _Failed("payload-hash", f"transaction {tx_hash} is not a private transaction")
    return dict(found)


def _open(item: DisclosedTransaction, envelope: DisclosedEnvelope, recipient_private: bytes) -> Any:
    try:
        return open_disclosed(recipient_private, item.payload_hash, envelope)
    except DisclosureCheckFailed as failure:
        raise _Failed(
            failure.step, f"transaction 0x{item.transaction_hash.hex()}: {failure.message}"
        ) from None


def _check_group(opened: Any, group_id: bytes, item: DisclosedTransaction) -> None:
    if privacy_group_id(list(opened.terms.group_keys)) != group_id:
        raise _Failed(
            "group",
            f"transaction 0x{item.transaction_hash.hex()} is not of group 0x{group_id.hex()}",
        )


def _verify_transaction_bundle(
    report: Report,
    raw: Any,
    recipient_private: bytes,
    rpc: JsonRpc,
    abis: Sequence[list[Any]],
) -> None:
    bundle, item = parse_transaction_bundle(raw)
    report.passed("format", TRANSACTION_KIND)
    envelopes = _envelopes([item])
    _check_signature(bundle, envelopes, recipient_private)
    report.passed("signature", "signed by the discloser's identity key, bound to its manager key")
    public = _check_on_chain(rpc, item)
    report.passed("chain", f"in block {item.block_number} at position {item.transaction_index}")
    report.passed("payload-hash", "the transaction's data is the payload hash")
    opened = _open(item, envelopes[0], recipient_private)
    for name in ("envelope-hash", "key-unwrap", "key-commitment", "decrypt", "terms"):
        report.passed(name)
    _check_group(opened, bytes.fromhex(bundle["groupId"][2:]), item)
    report.passed("group")
    report.calls.append(_decoded(public, opened.payload, abis))


def _verify_group_bundle(
    report: Report,
    raw: Any,
    recipient_private: bytes,
    rpc: JsonRpc,
    abis: Sequence[list[Any]],
) -> None:
    bundle, items = parse_group_bundle(raw)
    group_id = bytes.fromhex(bundle["groupId"][2:])
    height = int(bundle["height"])
    report.passed("format", f"{GROUP_KIND}: {len(items)} transactions up to block {height}")
    envelopes = _envelopes(items)
    _check_signature(bundle, envelopes, recipient_private)
    report.passed("signature", "signed by the discloser's identity key, bound to its manager key")

    positions = [(item.block_number, item.transaction_index) for item in items]
    if positions != sorted(set(positions)) or any(n > height for n, _ in positions):
        raise _Failed(
            "order", "the transactions are not in chain order up to the height, once each"
        )
    report.passed("order")

    steps: list[ReplayStep] = []
    for item, envelope in zip(items, envelopes, strict=True):
        public = _check_on_chain(rpc, item)
        opened = _open(item, envelope, recipient_private)
        _check_group(opened, group_id, item)
        steps.append(
            ReplayStep(
                block_number=item.block_number,
                sender=Address(bytes.fromhex(public["from"][2:])),
                to=None if public.get("to") is None else Address(bytes.fromhex(public["to"][2:])),
                nonce=int(public["nonce"], 16),
                gas=int(public["gas"], 16),
                payload=opened.payload,
                transaction_hash=item.transaction_hash,
                payload_hash=item.payload_hash,
                group_id=group_id,
                privacy_flag=int(opened.terms.privacy_mode),
                mandatory_for=tuple(
                    base64.b64encode(key).decode() for key in opened.terms.mandatory_recipients
                ),
            )
        )
        report.calls.append(_decoded(public, opened.payload, abis))
    for name in ("chain", "payload-hash", "envelope-hash", "key-unwrap", "key-commitment"):
        report.passed(name, f"all {len(items)} transactions")
    for name in ("decrypt", "terms", "group"):
        report.passed(name, f"all {len(items)} transactions")

    agreed_root = _check_commitments(bundle, group_id, height, rpc)
    report.passed("commitments", f"every member signed root 0x{agreed_root.hex()} at {height}")

    chain_id = int(bundle["chainId"])
    replayed = replay(rpc, chain_id, steps)
    final = replayed[-1][1] if replayed else bytes(BLANK_ROOT_HASH)
    if final != agreed_root:
        departs = _departure(replayed, bundle["roots"])
        where = (
            f"it first departs from the discloser's stated root after block {departs}"
            if departs is not None
            else "every stated root matches, so the history stops short of the members' root"
        )
        raise _Failed(
            "replay",
            f"replaying the history gives root 0x{final.hex()}, the members signed "
            f"0x{agreed_root.hex()}: {where}",
        )
    report.passed("replay", f"{len(steps)} transactions reproduce the members' root")


def _departure(
    replayed: list[tuple[int, bytes, list[int]]], stated_roots: list[dict[str, Any]]
) -> int | None:
    """The first block after which the replayed group root differs from the root the
    discloser stated (a block the replay has nothing for keeps the root before it)."""
    after: dict[int, bytes] = {number: root for number, root, _ in replayed}
    stated = sorted((int(r["blockNumber"]), str(r["root"])) for r in stated_roots)
    blocks = sorted(set(after) | {number for number, _ in stated})
    stated_at = dict(stated)
    root = bytes(BLANK_ROOT_HASH)
    for number in blocks:
        root = after.get(number, root)
        if number in stated_at and stated_at[number] != "0x" + root.hex():
            return number
        if number not in stated_at:
            return number  # the replay changed the root in a block the discloser did not list
    return None


def _check_commitments(bundle: dict[str, Any], group_id: bytes, height: int, rpc: JsonRpc) -> bytes:
    members = [base64.b64decode(key) for key in bundle["members"]]
    if privacy_group_id(members) != group_id:
        raise _Failed("commitments", "the members listed are not the group's")
    commitments = [GroupCommitment.from_json(c) for c in bundle["commitments"]]
    block = rpc.call("eth_getBlockByNumber", hex(height), False)
    if block is None or block["hash"] != bundle["blockHash"]:
        raise _Failed("commitments", f"block {height} of the chain is not {bundle['blockHash']}")
    by_member = {}
    for commitment in commitments:
        claim = commitment.claim
        if not verify(commitment):
            raise _Failed("commitments", "a member's commitment signature does not hold")
        if (
            claim.group_id != group_id
            or claim.block_number != height
            or "0x" + claim.block_hash.hex() != bundle["blockHash"]
            or claim.chain_id != int(bundle["chainId"])
        ):
            raise _Failed("commitments", "a commitment is for another group, height or chain")
        by_member[claim.member] = claim.root
    if set(by_member) != set(members):
        raise _Failed("commitments", "not every member's signed root at the height is included")
    roots = set(by_member.values())
    if len(roots) != 1:
        raise _Failed("commitments", "the members signed different roots at the height")
    return roots.pop()


def _decoded(public: dict[str, Any], payload: bytes, abis: Sequence[list[Any]]) -> DecodedCall:
    to = public.get("to")
    if to is None:
        return DecodedCall(public["hash"], None, f"contract creation, {len(payload)} bytes of code")
    selector = payload[:4]
    for abi in abis:
        for entry in abi:
            if entry.get("type") != "function":
                continue
            types = [i["type"] for i in entry.get("inputs", [])]
            signature = f"{entry['name']}({','.join(types)})"
            if _selector(signature) == selector:
                try:
                    values = decode(types, payload[4:])
                except Exception:  # noqa: BLE001, S112 - data that does not fit the ABI
                    continue
                arguments = ", ".join(
                    f"{i.get('name') or 'arg'}={_show(v)}"
                    for i, v in zip(entry["inputs"], values, strict=True)
                )
                return DecodedCall(public["hash"], to, f"{entry['name']}({arguments})")
    return DecodedCall(
        public["hash"], to, f"selector 0x{selector.hex()}, data 0x{payload[4:].hex()}"
    )


def _selector(signature: str) -> bytes:
    return bytes(keccak(signature.encode()))[:4]


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)


# --- the command -------------------------------------------------------------------------


def _read_recipient_key(path: Path, password_file: Path | None) -> bytes:
    password = password_file.read_text().strip().encode() if password_file else None
    return decode_private_key(json.loads(path.read_text()), password, path)


def _read_abis(paths: Sequence[Path]) -> list[list[Any]]:
    abis = []
    for path in paths:
        document = json.loads(path.read_text())
        abis.append(document["abi"] if isinstance(document, dict) else document)
    return abis


def run(args: argparse.Namespace) -> int:
    """``tx-manager verify-disclosure``: 0 only when every step holds."""
    try:
        bundle = json.loads(args.bundle.read_text())
        recipient_private = _read_recipient_key(args.key, args.password_file)
        abis = _read_abis(args.abi)
    except (OSError, ValueError, KeyError) as exc:
        print(f"verify-disclosure: {exc}", file=sys.stderr)
        return 2
    report = verify_bundle(bundle, recipient_private, args.rpc, abis)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        for step in report.steps:
            mark = "ok  " if step.ok else "FAIL"
            print(f"{mark} {step.name:<15} {step.detail}")
        for call in report.calls:
            print(
                f"call {call.transaction_hash[:18]}… to {call.to or '(new contract)'}: {call.text}"
            )
        print("verified" if report.ok else f"NOT verified: {report.failed.name}")  # type: ignore[union-attr]
    return 0 if report.ok else 1
