"""A soak test of our own, in the manner of Jepsen: load, faults at random, then checks.

Four participants on Raft with their managers (``qnet up``); private groups {node1,
node2}, {node2, node3, node4} and {node1, node3}, each with a private SimpleStorage, and
a public Token. Clients (threads) send to random nodes: public transfers of ether and of
the token, signed here from an account of their own, and private ``set`` calls from the
sending node's account. Meanwhile one fault at a time: kill -9 of a node, of a manager
or of the Raft leader, SIGSTOP and SIGCONT of a node, a graceful stop and start; each is
healed before the next. A partition is not among them: ``qnet up`` runs every
participant on this host's loopback (tests/network/test_partitions.py cuts links between
network namespaces).

Then, with every process up again, ``Soak.check`` asserts:

* every transaction a node acknowledged has a receipt on every node;
* all heads are equal;
* the public state matches the transfers that were mined (ether and token balances of
  each client's recipient);
* every group's members read the same value and hold the same root at the head, and no
  audit raised a mismatch or an equivocation;
* no process died by itself (only the ones the faults killed);
* no log wrote a burst (more than ``MAX_LINES_PER_SECOND`` lines in one second).

Everything random comes from one seed (``SOAK_SEED``, else drawn and printed), so a
failure names the seed that reproduces its choices (thread timing aside).
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_abi import decode, encode
from eth_account import Account
from eth_utils import keccak

from quorum_node.contracts import artifact
from quorum_node.qnet.processes import running_pid
from tests.network.harness import QnetNetwork, RpcFailure

NAMES = ["node1", "node2", "node3", "node4"]
GROUPS = (("node1", "node2"), ("node2", "node3", "node4"), ("node1", "node3"))
CLIENTS = 3
#: A log writing more than this many lines in one second has a storm (issue 27 saw 1,200).
MAX_LINES_PER_SECOND = 40
ETHER = 10**18
TOKEN_SUPPLY = 10**9


def selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


def call_data(signature: str, types: list[str], values: list[Any]) -> str:
    return "0x" + (selector(signature) + encode(types, values)).hex()


@dataclass
class Sent:
    """A transaction a client sent, and what became of it."""

    kind: str  # "ether", "token" or "private"
    tx_hash: str
    acknowledged: bool
    group: int | None = None
    value: int = 0


@dataclass
class Client:
    index: int
    key: str
    address: str
    recipient: str
    nonce: int = 0
    sent: list[Sent] = field(default_factory=list)
    refusals: Counter[str] = field(default_factory=Counter)


class Soak:
    def __init__(self, network: QnetNetwork, seed: int, seconds: float) -> None:
        self.network = network
        self.seed = seed
        self.seconds = seconds
        self.random = random.Random(seed)
        self.storage: list[str] = []
        self.token = ""
        self.clients: list[Client] = []
        self.faults: list[str] = []
        #: Processes a fault killed on purpose: (name, kind) -> how many times.
        self.killed: Counter[tuple[str, str]] = Counter()
        self._stop = threading.Event()
        self._lock = threading.Lock()

    # --- set-up -------------------------------------------------------------------------

    def deploy(self) -> None:
        network = self.network
        self.token = self._deploy(
            "node1",
            artifact("Token"),
            ["string", "string", "uint256"],
            ["Soak", "SOAK", TOKEN_SUPPLY],
            private_for=None,
        )
        for members in GROUPS:
            keys = [network.node(n)["tm_public_key"] for n in members[1:]]
            self.storage.append(
                self._deploy(members[0], artifact("SimpleStorage"), ["uint256"], [0], keys)
            )
        owner = network.account("node1")["address"]
        for index in range(CLIENTS):
            account = Account.create()
            recipient = Account.create().address
            client = Client(index, account.key.hex(), account.address, recipient)
            self.clients.append(client)
            self._await(
                self._send_held(
                    "node1", {"from": owner, "to": client.address, "value": hex(1000 * ETHER)}
                )
            )
            self._await(
                self._send_held(
                    "node1",
                    {
                        "from": owner,
                        "to": self.token,
                        "gas": hex(200_000),
                        "data": call_data(
                            "transfer(address,uint256)",
                            ["address", "uint256"],
                            [client.address, 10**6],
                        ),
                    },
                )
            )

    def _deploy(
        self,
        name: str,
        build: dict[str, Any],
        types: list[str],
        args: list[Any],
        private_for: list[str] | None,
    ) -> str:
        request: dict[str, Any] = {
            "from": self.network.account(name)["address"],
            "data": build["bytecode"] + encode(types, args).hex(),
            "gas": hex(3_000_000),
        }
        if private_for is not None:
            request["privateFor"] = private_for
        receipt = self._await(self._send_held(name, request), name)
        return str(receipt["contractAddress"])

    def _send_held(self, name: str, request: dict[str, Any]) -> str:
        return str(self.network.call(name, "eth_sendTransaction", [request]))

    def _await(self, tx_hash: str, name: str = "node1") -> dict[str, Any]:
        receipt = self.network.wait_receipt(name, tx_hash, timeout=60)
        assert receipt["status"] == "0x1", receipt
        return receipt

    # --- load ---------------------------------------------------------------------------

    def _client_loop(self, client: Client, seed: int) -> None:
        choices = random.Random(seed)
        while not self._stop.is_set():
            kind = choices.choice(["ether", "token", "private"])
            if kind == "private":
                self._send_private(client, choices)
            else:
                self._send_public(client, kind, choices)
            self._stop.wait(0.02)

    def _send_public(self, client: Client, kind: str, choices: random.Random) -> None:
        """Sign the client's next nonce once and send it to random nodes until one
        acknowledges it, or the network shows it has it ("already known", "nonce too
        low"): the client never leaves a gap in its nonces."""
        transaction: dict[str, Any] = {
            "nonce": client.nonce,
            "gasPrice": 0,
            "chainId": self.network.chain_id,
        }
        if kind == "ether":
            value = choices.randint(1, 1000)
            transaction.update(to=client.recipient, value=value, gas=21_000)
        else:
            value = 1
            transaction.update(
                to=self.token,
                value=0,
                gas=100_000,
                data=call_data(
                    "transfer(address,uint256)", ["address", "uint256"], [client.recipient, 1]
                ),
            )
        signed = Account.sign_transaction(transaction, client.key)
        raw, tx_hash = "0x" + signed.raw_transaction.hex(), "0x" + signed.hash.hex()
        while not self._stop.is_set():
            name = choices.choice(NAMES)
            try:
                self.network.call(name, "eth_sendRawTransaction", [raw])
                client.sent.append(Sent(kind, tx_hash, True, value=value))
                client.nonce += 1
                return
            except RpcFailure as failure:
                message = str(failure.error.get("message", failure))
                client.refusals[message.split(":")[0]] += 1
                if message in ("already known", "nonce too low"):
                    client.sent.append(Sent(kind, tx_hash, False, value=value))
                    client.nonce += 1
                    return
            except OSError as exc:  # down, stopped, killed mid-request
                client.refusals[type(exc).__name__] += 1
            self._stop.wait(0.1)
        client.sent.append(Sent(kind, tx_hash, False, value=value))  # maybe sent: checked

    def _send_private(self, client: Client, choices: random.Random) -> None:
        group = choices.randrange(len(GROUPS))
        members = GROUPS[group]
        sender = choices.choice(members)
        value = choices.randint(1, 10**9)
        others = [self.network.node(n)["tm_public_key"] for n in members if n != sender]
        try:
            tx_hash = self._send_held(
                sender,
                {
                    "from": self.network.account(sender)["address"],
                    "to": self.storage[group],
                    "gas": hex(200_000),
                    "data": call_data("set(uint256)", ["uint256"], [value]),
                    "privateFor": others,
                },
            )
        except RpcFailure as failure:
            client.refusals[str(failure.error.get("message", failure)).split(":")[0]] += 1
            return
        except OSError as exc:
            client.refusals[type(exc).__name__] += 1
            return
        client.sent.append(Sent("private", tx_hash, True, group=group, value=value))

    # --- faults -------------------------------------------------------------------------

    def _fault(self) -> None:
        network = self.network
        kind = self.random.choice(
            ["kill node", "kill manager", "kill leader", "sigstop", "stop and start"]
        )
        name = network.leader() if kind == "kill leader" else self.random.choice(NAMES)
        pause = self.random.uniform(2.0, 6.0)
        self.faults.append(f"{time.strftime('%H:%M:%S')} {kind} {name} ({pause:.1f}s)")
        if kind in ("kill node", "kill leader"):
            self._kill(name, "node")
            self._stop.wait(pause)
            network.start(name, only="node")
        elif kind == "kill manager":
            self._kill(name, "tm")
            self._stop.wait(pause)
            network.start(name, only="tm")
        elif kind == "sigstop":
            process = self._pid(name, "node")
            os.kill(process, signal.SIGSTOP)
            try:
                self._stop.wait(pause)
            finally:
                os.kill(process, signal.SIGCONT)
        else:
            network.stop(name)
            self._stop.wait(pause)
            network.start(name)

    def _pid(self, name: str, kind: str) -> int:
        process = running_pid(self.network.directory, name, kind)
        if process is None:
            raise AssertionError(f"{name}'s {kind} died by itself:\n{self._tail(name, kind)}")
        return process

    def _kill(self, name: str, kind: str) -> None:
        os.kill(self._pid(name, kind), signal.SIGKILL)
        self.killed[(name, kind)] += 1

    def _every_process_alive(self) -> None:
        for name in NAMES:
            for kind in ("node", "tm"):
                self._pid(name, kind)

    def _tail(self, name: str, kind: str) -> str:
        path = self.network.directory / name / f"{kind}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else "(no log)"

    # --- the run ------------------------------------------------------------------------

    def run(self) -> None:
        threads = [
            threading.Thread(
                target=self._client_loop,
                args=(client, self.random.random()),
                name=f"soak-client-{client.index}",
                daemon=True,
            )
            for client in self.clients
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + self.seconds
        try:
            while time.monotonic() < deadline - 10:
                self._stop.wait(self.random.uniform(8.0, 15.0))
                self._every_process_alive()
                if time.monotonic() < deadline - 10:
                    self._fault()
            self._stop.wait(max(0.0, deadline - time.monotonic()))
        finally:
            self._stop.set()
            for thread in threads:
                thread.join(30)

    # --- the checks ---------------------------------------------------------------------

    def check(self) -> dict[str, Any]:
        network = self.network
        self._every_process_alive()
        sent = [item for client in self.clients for item in client.sent]
        acknowledged = [item for item in sent if item.acknowledged]
        for item in acknowledged:
            for name in NAMES:
                network.wait_receipt(name, item.tx_hash, timeout=120)
        head_hash = network.wait_same_head(timeout=60)
        head = network.call("node1", "eth_getBlockByHash", [head_hash, False])["number"]
        self._check_public(head)
        groups = self._check_private(head, acknowledged)
        self._check_audit()
        bursts = self._log_bursts()
        assert not bursts, f"log bursts (lines in one second): {bursts}"
        return {
            "seed": self.seed,
            "head": int(head, 16),
            "acknowledged": len(acknowledged),
            "not acknowledged": len(sent) - len(acknowledged),
            "by kind": dict(Counter(item.kind for item in acknowledged)),
            "faults": self.faults,
            "refusals": dict(sum((c.refusals for c in self.clients), Counter())),
            "group values": groups,
        }

    def _mined(self, tx_hash: str) -> bool:
        return self.network.call("node1", "eth_getTransactionReceipt", [tx_hash]) is not None

    def _check_public(self, head: str) -> None:
        for client in self.clients:
            mined = [
                item for item in client.sent if item.kind != "private" and self._mined(item.tx_hash)
            ]
            ether = sum(item.value for item in mined if item.kind == "ether")
            tokens = sum(item.value for item in mined if item.kind == "token")
            balance_of = call_data("balanceOf(address)", ["address"], [client.recipient])
            for name in NAMES:
                balance = self.network.call(name, "eth_getBalance", [client.recipient, head])
                assert int(balance, 16) == ether, (name, client.index, balance, ether)
                held = self._uint(name, {"to": self.token, "data": balance_of}, head)
                assert held == tokens, (name, client.index, held, tokens)

    def _check_private(self, head: str, acknowledged: list[Sent]) -> list[int]:
        """Each group's members read one value and hold one root for the group at
        ``head``; every acknowledged ``set`` succeeded on every member."""
        values = []
        get = call_data("get()", [], [])
        for index, members in enumerate(GROUPS):
            seen = {
                name: self._uint(name, {"to": self.storage[index], "data": get}, head)
                for name in members
            }
            assert len(set(seen.values())) == 1, (members, seen)
            values.append(next(iter(seen.values())))
            group_id = self._group_id(members)
            roots = {
                name: self.network.call(name, "debug_privateStateRoots", [head]).get(group_id)
                for name in members
            }
            assert None not in roots.values() and len(set(roots.values())) == 1, roots
            for item in acknowledged:
                if item.group != index:
                    continue
                for name in members:
                    receipt = self.network.call(name, "eth_getTransactionReceipt", [item.tx_hash])
                    assert receipt["status"] == "0x1", (name, item, receipt)
        return values

    def _uint(self, name: str, call: dict[str, Any], block: str) -> int:
        raw = self.network.call(name, "eth_call", [call, block])
        return int(decode(["uint256"], bytes.fromhex(raw[2:]))[0])

    def _group_id(self, members: tuple[str, ...]) -> str:
        """The id of the party group of ``members`` (as the audit lists it)."""
        keys = {self.network.node(name)["tm_public_key"] for name in members}
        for entry in self.network.call(members[0], "quorum_auditStatus"):
            if set(entry["members"]) == keys:
                return str(entry["groupId"])
        raise AssertionError(f"no party group of {members} on {members[0]}")

    def _check_audit(self) -> None:
        for name in NAMES:
            for entry in self.network.call(name, "quorum_auditStatus"):
                grave = [a for a in entry["alarms"] if a["kind"] in ("mismatch", "equivocation")]
                assert not grave, (name, entry)

    def _log_bursts(self) -> dict[str, list[tuple[str, int]]]:
        bursts = {}
        for path in sorted(self.network.directory.glob("*/*.log")):
            per_second = Counter(
                line[:19]
                for line in path.read_text(errors="replace").splitlines()
                if line[:2] == "20"
            )
            worst = [
                (second, count)
                for second, count in per_second.most_common(3)
                if count > MAX_LINES_PER_SECOND
            ]
            if worst:
                bursts[str(path.relative_to(self.network.directory))] = worst
        return bursts


def soak(
    directory: Path, seconds: float, seed: int, report: Callable[[str], None]
) -> dict[str, Any]:
    """Start the network in ``directory``, run the soak and its checks; always ``qnet
    down``. The report names the seed first, so a failure can be repeated."""
    report(f"soak: seed {seed}, {seconds:.0f}s of load (SOAK_SEED={seed} repeats the choices)")
    network = QnetNetwork(directory)
    try:
        network.up(len(NAMES), tx_managers=True)
        run = Soak(network, seed, seconds)
        run.deploy()
        run.run()
        return run.check()
    finally:
        network.down()
