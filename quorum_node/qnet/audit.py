"""``qnet audit`` and ``qnet recover``: what the members of each party group signed, and
a participant's recovery checked against the other members' signed roots.

Both use only what any client can call (JSON-RPC on the nodes, ``GET /recovery`` on the
recovering manager), so the same checks work across hosts with ``check_recovery`` and
an RPC URL.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quorum_node.errors import ConfigError
from quorum_node.qnet import processes
from quorum_node.qnet.layout import NetworkLayout, ParticipantLayout

#: How long ``recover`` waits for each of: the manager's recovery, the node's resync,
#: the next commitment height at which every member signed.
RECOVERY_TIMEOUT = 600.0
SYNC_TIMEOUT = 600.0
COMMITMENT_TIMEOUT = 120.0
PRIVATE_V = (37, 38)
BATCH = 100
_NONE = (None, "0x")  # eth_getQuorumPayload of a payload this node's manager does not hold


def rpc_batch(url: str, calls: list[tuple[str, list[Any]]], timeout: float = 30.0) -> list[Any]:
    """Many JSON-RPC calls in one HTTP request; an error answers None for that call."""
    results: list[Any] = []
    for start in range(0, len(calls), BATCH):
        chunk = calls[start : start + BATCH]
        body = json.dumps(
            [
                {"jsonrpc": "2.0", "id": index, "method": method, "params": params}
                for index, (method, params) in enumerate(chunk)
            ]
        ).encode()
        # S310: qnet's own http:// URLs of the network's nodes (layout.json).
        request = urllib.request.Request(  # noqa: S310
            url, data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            replies = {reply["id"]: reply for reply in json.loads(response.read())}
        results.extend(replies[index].get("result") for index in range(len(chunk)))
    return results


def _short(value: str, size: int = 10) -> str:
    return value[: size + 2] + "…" if len(value) > size + 2 else value


# --- qnet audit --------------------------------------------------------------------------


@dataclass
class GroupView:
    group_id: str
    members: list[str]
    status: dict[str, str] = field(default_factory=dict)  # participant name → its status
    heights: dict[str, int] = field(default_factory=dict)  # member key → its last height
    roots: dict[str, str] = field(default_factory=dict)  # member key → its last root
    alarms: list[dict[str, Any]] = field(default_factory=list)


def network_audit(layout: NetworkLayout, directory: Path) -> dict[str, GroupView]:
    """Every group as the running nodes report it; a member's own height and root come
    from its own node where that node runs."""
    groups: dict[str, GroupView] = {}
    key_of = {p.name: p.tm_public_key for p in layout.participants}
    for participant in layout.participants:
        if processes.running_pid(directory, participant.name, "node") is None:
            continue
        try:
            entries = processes.rpc_call(_url(layout, participant), "quorum_auditStatus")
        except (OSError, RuntimeError, ValueError):
            continue
        for entry in entries:
            view = groups.setdefault(
                entry["groupId"], GroupView(entry["groupId"], list(entry["members"]))
            )
            view.status[participant.name] = entry["status"]
            own = key_of[participant.name]
            for member, height in entry["memberHeights"].items():
                if member == own or member not in view.heights:
                    view.heights[member] = height
                    if member in entry.get("memberRoots", {}):
                        view.roots[member] = entry["memberRoots"][member]
            seen = {json.dumps(a, sort_keys=True) for a in view.alarms}
            view.alarms += [a for a in entry["alarms"] if json.dumps(a, sort_keys=True) not in seen]
    return groups


def differing_contracts(
    layout: NetworkLayout, directory: Path, view: GroupView, height: int
) -> dict[str, dict[str, dict[str, Any]]]:
    """Address → member name → account, for every account whose state differs between
    the members' nodes at ``height`` (``quorum_groupContracts``)."""
    by_member: dict[str, dict[str, dict[str, Any]]] = {}
    for participant in _members(layout, view):
        if processes.running_pid(directory, participant.name, "node") is None:
            continue
        try:
            accounts = processes.rpc_call(
                _url(layout, participant), "quorum_groupContracts", [view.group_id, hex(height)]
            )
        except (OSError, RuntimeError, ValueError):
            continue
        by_member[participant.name] = {a["address"]: a for a in accounts}
    addresses = sorted({address for accounts in by_member.values() for address in accounts})
    differing: dict[str, dict[str, dict[str, Any]]] = {}
    for address in addresses:
        seen = {name: accounts.get(address) for name, accounts in by_member.items()}
        if len({json.dumps(a, sort_keys=True) for a in seen.values()}) > 1:
            differing[address] = {name: a or {} for name, a in seen.items()}
    return differing


def audit(directory: Path) -> int:
    layout = NetworkLayout.load(directory)
    if not layout.with_tx_managers:
        raise ConfigError("this network has no transaction managers: nothing is private")
    names = {p.tm_public_key: p.name for p in layout.participants}
    groups = network_audit(layout, directory)
    if not groups:
        print("no party group yet (or no node running)")
        return 0
    healthy = True
    for view in sorted(groups.values(), key=lambda v: v.group_id):
        statuses = sorted(set(view.status.values()))
        healthy &= all(s in ("agreed", "pending", "lagging") for s in statuses)
        member_names = ", ".join(names.get(m, _short(m)) for m in view.members)
        print(f"group {_short(view.group_id, 16)} ({member_names}): {'/'.join(statuses)}")
        for member in view.members:
            height = view.heights.get(member)
            root = view.roots.get(member, "-")
            shown = "-" if height is None else str(height)
            print(f"  {names.get(member, _short(member)):<12} height {shown:>7}  root {root}")
        for alarm in view.alarms:
            who = names.get(alarm["member"], _short(alarm["member"]))
            print(f"  ALARM {alarm['kind']} at height {alarm['height']}: {who}")
        mismatches = [a for a in view.alarms if a["kind"] == "mismatch"]
        if mismatches:
            height = max(a["height"] for a in mismatches)
            differing = differing_contracts(layout, directory, view, height)
            if not differing:
                print(f"  no contract state differs at height {height} among the running nodes")
            for address, accounts in differing.items():
                print(f"  contract {address} differs at height {height}:")
                for name, account in accounts.items():
                    state = account.get("storageRoot", "absent")
                    print(f"    {name:<12} storageRoot {state}")
    return 0 if healthy else 1


# --- qnet recover ------------------------------------------------------------------------


@dataclass
class GroupCheck:
    group_id: str
    payloads: int
    height: int | None
    matching: int
    members: int

    def to_json(self) -> dict[str, Any]:
        return {
            "groupId": self.group_id,
            "payloads": self.payloads,
            "height": self.height,
            "matching": self.matching,
            "members": self.members,
        }


@dataclass
class RecoveryReport:
    groups: list[GroupCheck]
    unrecoverable: int
    received: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and all(
            g.height is not None and g.matching == g.members for g in self.groups
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "groups": [g.to_json() for g in self.groups],
            "unrecoverable": self.unrecoverable,
            "ok": self.ok,
        }

    def print_table(self, names: dict[str, str]) -> None:
        if self.received is not None:
            print(f"the manager received {self.received} envelopes from its peers")
        print(f"{'group':<20} {'members':<24} {'payloads':>8} {'height':>7}  matching")
        for g in self.groups:
            height = "-" if g.height is None else str(g.height)
            print(
                f"{_short(g.group_id, 16):<20} {names.get(g.group_id, ''):<24} "
                f"{g.payloads:>8} {height:>7}  {g.matching} of {g.members}"
            )
        print(f"unrecoverable (held by this participant only): {self.unrecoverable}")
        for problem in self.problems:
            print(f"problem: {problem}")
        print("recovery verified" if self.ok else "recovery NOT verified")


def _url(layout: NetworkLayout, participant: ParticipantLayout) -> str:
    return f"http://{layout.host}:{participant.http_port}"


def _members(layout: NetworkLayout, view: GroupView) -> list[ParticipantLayout]:
    return [p for p in layout.participants if p.tm_public_key in view.members]


def _manager_recovery(url: str) -> dict[str, Any] | None:
    try:
        # S310: the manager's http:// Q2T URL that qnet wrote into layout.json
        with urllib.request.urlopen(url + "/recovery", timeout=2) as response:  # noqa: S310
            return dict(json.loads(response.read()))
    except (OSError, urllib.error.URLError, ValueError):
        return None


def private_payload_census(url: str, accounts: set[str]) -> tuple[dict[str, int], int]:
    """Per group, the private transactions this node holds the payload of; and how many
    private transactions sent from ``accounts`` it holds no payload of (sent with
    ``privateFor: []`` or to parties that are all gone: nobody can give them back)."""
    head = int(processes.rpc_call(url, "eth_blockNumber"), 16)
    blocks = rpc_batch(url, [("eth_getBlockByNumber", [hex(n), True]) for n in range(1, head + 1)])
    private = [
        tx
        for block in blocks
        if block
        for tx in block["transactions"]
        if int(tx["v"], 16) in PRIVATE_V
    ]
    payloads = rpc_batch(url, [("eth_getQuorumPayload", [tx["input"]]) for tx in private])
    held = [tx for tx, payload in zip(private, payloads, strict=True) if payload not in _NONE]
    unrecoverable = sum(
        1
        for tx, payload in zip(private, payloads, strict=True)
        if payload in _NONE and tx["from"].lower() in accounts
    )
    receipts = rpc_batch(url, [("eth_getTransactionReceipt", [tx["hash"]]) for tx in held])
    contracts = [
        (receipt or {}).get("contractAddress") or tx["to"]
        for tx, receipt in zip(held, receipts, strict=True)
    ]
    metadata = rpc_batch(
        url, [("eth_getContractPrivacyMetadata", [c]) for c in contracts if c is not None]
    )
    per_group: dict[str, int] = {}
    for meta in metadata:
        if meta:
            per_group[meta["privacyGroupId"]] = per_group.get(meta["privacyGroupId"], 0) + 1
    return per_group, unrecoverable


def check_recovery(
    url: str, accounts: set[str], own_key: str, timeout: float = COMMITMENT_TIMEOUT
) -> RecoveryReport:
    """After a resync: make a commitment height happen (one empty transfer from the
    participant's own account), wait until every group's members signed at or after it,
    and compare."""
    sender = next(iter(sorted(accounts)), None)
    target = int(processes.rpc_call(url, "eth_blockNumber"), 16)
    if sender is not None:
        tx_hash = processes.rpc_call(url, "eth_sendTransaction", [{"from": sender, "to": sender}])
        deadline = time.monotonic() + 60
        while (receipt := processes.rpc_call(url, "eth_getTransactionReceipt", [tx_hash])) is None:
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if receipt is not None:
            target = int(receipt["blockNumber"], 16)
    deadline = time.monotonic() + timeout
    entries: list[dict[str, Any]] = []
    while True:
        entries = processes.rpc_call(url, "quorum_auditStatus")
        settled = all(
            e["status"] in ("mismatch", "equivocation")
            or (e["agreedHeight"] is not None and e["agreedHeight"] >= target)
            for e in entries
        )
        if settled or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    per_group, unrecoverable = private_payload_census(url, accounts)
    report = RecoveryReport([], unrecoverable)
    for entry in entries:
        members = entry["members"]
        own_root = entry["memberRoots"].get(own_key)
        if entry["agreedHeight"] is not None and entry["agreedHeight"] >= target:
            height, matching = entry["agreedHeight"], len(members)
        else:
            height = entry["memberHeights"].get(own_key)
            matching = sum(
                1
                for m in members
                if entry["memberHeights"].get(m) == height
                and entry["memberRoots"].get(m) == own_root
            )
            report.problems.append(
                f"group {_short(entry['groupId'], 16)} is {entry['status']}: "
                f"{matching} of {len(members)} members signed this node's root"
            )
        report.groups.append(
            GroupCheck(
                entry["groupId"], per_group.get(entry["groupId"], 0), height, matching, len(members)
            )
        )
    return report


def recover(directory: Path, name: str, wipe: bool, as_json: bool) -> int:
    layout = NetworkLayout.load(directory)
    participant = layout.participant(name)
    if not layout.with_tx_managers:
        raise ConfigError("this network has no transaction managers: nothing to recover")
    logs = [processes.log_path(directory, name, kind) for kind in ("tm", "node")]
    for kind in ("node", "tm"):
        processes.stop_process(directory, name, kind)
    tm_flags = ["--wipe"] if wipe else ["--recover"]
    processes.start_process(directory, participant, "tm", tm_flags)
    processes.start_process(directory, participant, "node", ["--wipe"] if wipe else [])
    tm_url = f"http://{layout.host}:{participant.tm_q2t_port}"
    processes.wait_for(
        lambda: processes.tm_answers(layout, participant), 90, f"{name}'s manager", logs
    )
    recovery: dict[str, Any] = {}

    def recovered() -> bool:
        nonlocal recovery
        recovery = _manager_recovery(tm_url) or {"recovering": True}
        return not recovery.get("recovering", True)

    processes.wait_for(
        recovered, RECOVERY_TIMEOUT, f"{name}'s manager to recover from its peers", logs
    )
    processes.wait_for(
        lambda: processes.node_answers(layout, participant), 90, f"{name}'s node", logs
    )
    url = _url(layout, participant)
    others = [
        p
        for p in layout.participants
        if p.name != name and processes.running_pid(directory, p.name, "node") is not None
    ]

    def synced() -> bool:
        try:
            own = int(processes.rpc_call(url, "eth_blockNumber"), 16)
            heads = [
                int(processes.rpc_call(_url(layout, p), "eth_blockNumber"), 16) for p in others
            ]
        except (OSError, RuntimeError, ValueError):
            return False
        return own >= max(heads, default=0)

    processes.wait_for(synced, SYNC_TIMEOUT, f"{name}'s node to resync", logs)
    own_key = participant.tm_public_key or ""
    report = check_recovery(url, {participant.account_address.lower()}, own_key)
    report.received = recovery.get("received")
    if as_json:
        print(json.dumps(report.to_json()))
    else:
        by_key = {p.tm_public_key: p.name for p in layout.participants}
        names = {
            entry["groupId"]: ",".join(by_key.get(m, "?") for m in entry["members"])
            for entry in processes.rpc_call(url, "quorum_auditStatus")
        }
        report.print_table(names)
    return 0 if report.ok else 1
