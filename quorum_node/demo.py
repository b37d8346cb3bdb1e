"""``qnet demo`` (also ``quorum-demo``, ``make demo``): three banks on a local network,
and what each of them can see.

The story, told on a real network started with ``qnet`` (node + transaction manager for
BankA, BankB and BankC):

1. The classic: BankA deploys SimpleStorage(42) privately for BankB.
2. Delivery versus payment: BankA sells bonds to BankB for cash, both legs settled
   atomically in one private contract call between the two of them.
3. The public ledger: what every participant, BankC included, holds for those
   transactions: nothing but 64-byte payload hashes.
4. The audit: every member of each party group signs its group's private state root,
   and all members agree.
5. A regulator, a fresh key no participant knows, is shown the settlement and the bank
   group's whole history with proof, checks both against BankC's public node, and sees
   a copy with a changed amount fail, naming the step.
6. A custodian, BankC, joins the bank group: BankA proposes, BankB and BankC approve,
   BankC checks the state handed over against both members' signed roots, and BankA
   moves bonds to it in the new group.

After each step a table shows what each participant's node answers.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from eth_typing import HexStr
from web3 import Web3
from web3.contract import Contract

from quorum_node.contracts import artifact
from quorum_node.disclosure.verify import Report, verify_bundle
from quorum_node.explorer.cli import ExplorerStartError, start_detached
from quorum_node.qnet.cli import main as qnet
from quorum_node.web3_ext import attach_quorum, quorum_module

NAMES = ("BankA", "BankB", "BankC")
DESCRIPTION = "Three banks on a local quorum-py network, and what each of them can see."


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    line = "+".join("-" * (width + 2) for width in widths)
    print(f"\n{title}\n+{line}+")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print(f"+{line}+")
    for row in rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    print(f"+{line}+")


class Participant:
    def __init__(self, entry: dict[str, Any]) -> None:
        self.name = entry["name"]
        self.w3 = attach_quorum(Web3(Web3.HTTPProvider(entry["rpc_url"])))
        self.quorum = quorum_module(self.w3)
        self.manager_key: str = entry["tm_public_key"]
        self.account: str = self.w3.eth.accounts[0]
        self.rpc_url: str = entry["rpc_url"]
        self.network: list[Participant] = [self]

    def _settle(self, tx_hash: Any) -> Any:
        """This participant's receipt, once every participant's node holds the block:
        with Raft the other nodes import it a moment after the sender's node reports it,
        and the tables compare what all of them see."""
        for other in self.network:
            other.quorum.wait_for_private_receipt(tx_hash)
        return self.quorum.wait_for_private_receipt(tx_hash)

    def deploy(self, name: str, args: list[Any], private_for: list[str]) -> str:
        spec = artifact(name)
        factory = self.w3.eth.contract(abi=spec["abi"], bytecode=spec["bytecode"])
        tx_hash = factory.constructor(*args).transact(
            {"from": self.account, "privateFor": private_for}
        )
        receipt = self._settle(tx_hash)
        if receipt.status != 1:
            raise SystemExit(f"{self.name}: deploying {name} failed")
        return str(receipt.contractAddress)

    def contract(self, name: str, address: str) -> Contract:
        return self.w3.eth.contract(
            address=Web3.to_checksum_address(address), abi=artifact(name)["abi"]
        )

    def transact(self, function: Any, private_for: list[str]) -> Any:
        tx_hash = function.transact({"from": self.account, "privateFor": private_for})
        return self._settle(tx_hash)


def read(participant: Participant, name: str, address: str, function: str, *args: Any) -> str:
    """What a participant's node answers, or why it cannot."""
    if participant.w3.eth.get_code(Web3.to_checksum_address(address)) in (b"", "0x"):
        return "(not visible)"
    try:
        return str(getattr(participant.contract(name, address).functions, function)(*args).call())
    except Exception as exc:  # any refusal is what the participant sees
        return f"error: {exc}"[:40]


def run_story(network: dict[str, Any]) -> list[str]:
    a, b, c = (Participant(entry) for entry in network["nodes"])
    everyone = (a, b, c)
    for participant in everyone:
        participant.network = list(everyone)
    private_hashes: list[str] = []

    # 1 -------------------------------------------------------------------------
    print("\n== 1. BankA deploys SimpleStorage(42), private for BankB ==")
    storage = a.deploy("SimpleStorage", [42], [b.manager_key])
    table(
        "What each bank reads from SimpleStorage.get()",
        ["participant", "get()"],
        [[p.name, read(p, "SimpleStorage", storage, "get")] for p in everyone],
    )
    receipt = b.transact(b.contract("SimpleStorage", storage).functions.set(43), [a.manager_key])
    private_hashes.append(receipt.transactionHash.hex())
    table(
        "After BankB sets 43 (private for BankA)",
        ["participant", "get()", "receipt logs"],
        [
            [
                p.name,
                read(p, "SimpleStorage", storage, "get"),
                str(len(p.w3.eth.get_transaction_receipt(receipt.transactionHash)["logs"])),
            ]
            for p in everyone
        ],
    )

    # 2 -------------------------------------------------------------------------
    print("\n== 2. Delivery versus payment between BankA (seller) and BankB (buyer) ==")
    bond = a.deploy("Token", ["Bond 2031", "BND31", 1_000], [b.manager_key])
    cash = b.deploy("Token", ["Euro cash", "EURC", 1_000_000], [a.manager_key])
    dvp = a.deploy("DvP", [], [b.manager_key])
    a.transact(a.contract("Token", bond).functions.approve(dvp, 100), [b.manager_key])
    b.transact(b.contract("Token", cash).functions.approve(dvp, 98_500), [a.manager_key])

    def balances(title: str) -> None:
        rows = []
        for p in everyone:
            rows.append(
                [
                    p.name,
                    read(p, "Token", bond, "balanceOf", a.account),
                    read(p, "Token", bond, "balanceOf", b.account),
                    read(p, "Token", cash, "balanceOf", a.account),
                    read(p, "Token", cash, "balanceOf", b.account),
                ]
            )
        table(title, ["seen from", "A's bonds", "B's bonds", "A's cash", "B's cash"], rows)

    balances("Before settlement")
    settle = a.contract("DvP", dvp).functions.settle(bond, cash, a.account, b.account, 100, 98_500)
    receipt = a.transact(settle, [b.manager_key])
    private_hashes.append(receipt.transactionHash.hex())
    print(
        f"settle(): status {receipt.status} on BankA, "
        f"{len(receipt.logs)} logs (two Transfers and Settled)"
    )
    balances("After settlement: both legs moved at once, BankC saw none of it")

    # 3 -------------------------------------------------------------------------
    print("\n== 3. What the public ledger holds (read from BankC, a non-party) ==")
    rows = []
    for tx_hash in private_hashes:
        public = c.w3.eth.get_transaction(HexStr(tx_hash))
        payload = c.quorum.get_quorum_payload(public["input"])
        rows.append(
            [
                ("0x" + tx_hash.removeprefix("0x"))[:18] + "…",
                str(public["v"]),
                f"{len(public['input'])} bytes",
                "0x" + bytes(public["input"]).hex()[:24] + "…",
                "0x (not a party)" if not payload else "visible",
            ]
        )
    table(
        "Private transactions on the public chain",
        ["transaction", "v", "input", "input starts", "payload at BankC"],
        rows,
    )
    roots = [[p.name, "0x" + bytes(p.quorum.storage_root(bond)).hex()[:24] + "…"] for p in (a, b)]
    table(
        "Bond token storage root on each party (equal: one private state)", ["party", "root"], roots
    )
    # 4 -------------------------------------------------------------------------
    print("\n== 4. The audit: each group's members sign its root, and agree ==")
    settled_block = int(receipt.blockNumber)
    group = a.quorum.get_contract_privacy_metadata(dvp)["privacyGroupId"]
    entry = wait_for_agreement(a, group, settled_block)
    names = {p.manager_key: p.name for p in everyone}
    table(
        "quorum_auditStatus on BankA",
        ["group", "members", "status", "agreed at"],
        [
            [
                e["groupId"][:12] + "…",
                ", ".join(sorted(names.get(m, "?") for m in e["members"])),
                e["status"],
                str(e["agreedHeight"]),
            ]
            for e in a.quorum.audit_status()
        ],
    )

    # 5 -------------------------------------------------------------------------
    print("\n== 5. A regulator is shown the settlement and the banks' history, with proof ==")
    regulator = Regulator.create()
    bundle = a.quorum.disclose_transaction(receipt.transactionHash, regulator.public_key)
    abis = [artifact(name)["abi"] for name in ("DvP", "Token", "SimpleStorage")]
    report = verify_bundle(bundle, regulator.private_key, c.rpc_url, abis)
    show_report("The settlement, checked against BankC's node (no party)", report)
    history = a.quorum.disclose_group(group, int(entry["agreedHeight"]), regulator.public_key)
    report = verify_bundle(history, regulator.private_key, c.rpc_url, abis)
    show_report(
        f"The bank group's {len(history['transactions'])} transactions up to block "
        f"{history['height']}, replayed against both members' signed roots",
        report,
    )
    doctored = json.loads(json.dumps(bundle))
    for log in doctored["transaction"]["receipt"]["logs"]:
        log["data"] = "0x" + (99_999).to_bytes(32, "big").hex()  # "the amount was 99,999"
    report = verify_bundle(doctored, regulator.private_key, c.rpc_url, abis)
    failed = report.failed
    print(
        "A copy with the settled amount changed: "
        + ("verified (it should not be!)" if failed is None else f"fails at step '{failed.name}'")
    )

    # 6 -------------------------------------------------------------------------
    print("\n== 6. A custodian (BankC) joins the bank group, with its state proven ==")
    change = a.quorum.extend_contract(bond, c.manager_key, a.account)
    for voter in (b, c):
        wait_for_change(voter, change, lambda s: s["status"] == "voting")
        voter.w3.eth.wait_for_transaction_receipt(
            voter.quorum.approve_extension(change, voter.account)
        )
    status = wait_for_change(c, change, lambda s: s["handover"].get("state") == "accepted")
    print(
        f"group change active at block {status['activationBlock']}: BankC checked the state "
        f"handed over by {len(status['handover']['receivedFrom'])} members against their "
        "signed roots and accepted it"
    )

    def bonds(title: str) -> None:
        table(
            title,
            ["seen from", "A's bonds", "B's bonds", "C's bonds"],
            [
                [p.name, *(read(p, "Token", bond, "balanceOf", q.account) for q in everyone)]
                for p in everyone
            ],
        )

    bonds("Bond balances after the hand-over: BankC sees what BankA and BankB see")
    receipt = a.transact(
        a.contract("Token", bond).functions.transfer(c.account, 10), [b.manager_key, c.manager_key]
    )
    private_hashes.append(receipt.transactionHash.hex())
    bonds(f"After BankA moves 10 bonds to the custodian in the new group (status {receipt.status})")
    return private_hashes


def wait_for_change(
    participant: Participant, change: Any, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The change as ``participant`` sees it, once ``done`` holds (at most 60 s)."""
    deadline = time.monotonic() + 60
    while True:
        status = participant.quorum.get_group_change(change)
        if status is not None and done(status):
            return dict(status)
        if time.monotonic() > deadline:
            raise SystemExit(f"group change on {participant.name}: still {status}")
        time.sleep(0.2)


def wait_for_agreement(participant: Participant, group: str, height: int) -> dict[str, Any]:
    """The group's audit entry once all members signed one root at or after ``height``."""
    deadline = time.monotonic() + 30
    while True:
        for entry in participant.quorum.audit_status():
            agreed = entry["agreedHeight"]
            if entry["groupId"] == group and agreed is not None and agreed >= height:
                return entry
        if time.monotonic() > deadline:
            raise SystemExit("the members did not sign a common root within 30 s")
        time.sleep(0.2)


class Regulator:
    """A key pair that no manager of the network knows."""

    def __init__(self, public_key: str, private_key: bytes) -> None:
        self.public_key = public_key
        self.private_key = private_key

    @classmethod
    def create(cls) -> Regulator:
        private = X25519PrivateKey.generate()
        public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return cls(base64.b64encode(public).decode(), raw)


def show_report(title: str, report: Report) -> None:
    rows = [[step.name, "ok" if step.ok else "FAILED", step.detail[:60]] for step in report.steps]
    table(title, ["step", "", "detail"], rows)
    for call in report.calls[-3:]:
        print(f"  decoded: {call.text[:110]}")
    print("  verified" if report.ok else "  NOT verified")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The demo's options, shared by ``quorum-demo`` and ``qnet demo``."""
    parser.add_argument(
        "--dir", type=Path, default=Path("demo-net"), help="the network's folder (demo-net)"
    )
    parser.add_argument("--keep", action="store_true", help="leave the network running")


def run(args: argparse.Namespace) -> int:
    """Start the banks' network in ``args.dir`` (a previous demo network there is stopped
    and deleted first, unless ``--keep``), tell the story, and stop the network unless
    ``--keep``. Returns the exit status."""
    started = time.monotonic()
    if (args.dir / "layout.json").exists() and not args.keep:
        qnet(["down", "--dir", str(args.dir)])
        shutil.rmtree(args.dir)
    if qnet(["up", "--dir", str(args.dir), "--nodes", "3", "--names", ",".join(NAMES)]) != 0:
        return 1
    try:
        network = json.loads((args.dir / "network.json").read_text())
        run_story(network)
    finally:
        if args.keep:
            print(f"\nThe network keeps running (stop it with: qnet down --dir {args.dir}):")
            for entry in json.loads((args.dir / "network.json").read_text())["nodes"]:
                print(
                    f"  {entry['name']}: {entry['rpc_url']}  manager key {entry['tm_public_key']}"
                )
            try:
                url = start_detached(args.dir, "127.0.0.1", 0, [])
                print(f"  explorer: {url}  (each bank's view side by side)")
            except ExplorerStartError as exc:
                print(f"  explorer did not start: {exc}")
        else:
            qnet(["down", "--dir", str(args.dir)])
    print(f"\ndemo finished in {time.monotonic() - started:.0f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``quorum-demo`` and ``python -m quorum_node.demo``."""
    parser = argparse.ArgumentParser(prog="quorum-demo", description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
