"""Three participants on three "hosts" (network namespaces on one bridge), each started
from its ``qnet init --hosts`` bundle with the README's two commands, and the network
between them cut, delayed and filtered:

* the Raft leader cut off: the other two elect a new leader within 5 s, the old leader
  mints nothing, and after the link is back it catches up; no block at any height is
  ever replaced;
* 100 ms more on every link (``tc netem``, or where the kernel has no ``sch_netem`` a
  delay in the test process, tests/support/tun_delay.py): a TCP handshake between any
  two hosts takes 200 ms more, public and private transactions still commit, and their
  send-to-receipt latency is printed;
* one party's manager unreachable (its P2P port dropped): a send to it fails with an
  error naming it, and every other transaction goes through;
* a participant killed with SIGKILL while another is cut off: every transaction whose
  payload the managers acknowledged is included after the restart and the heal, with
  its payload at every party.

Everything runs as root; without namespaces (not root, no iproute2) the module is
skipped with the reason. One network serves the whole module; after each test every
link is restored and every process running again.
"""

from __future__ import annotations

import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from eth_abi import encode

from quorum_shared.config_files import read_document, write_document
from tests.network.harness import BURN_ADDRESS, RpcFailure
from tests.privacy.conftest import artifact
from tests.support.netns import Topology, delayed_links, topology, unavailable_reason
from tests.support.node_process import rpc
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(180)]

NAMES = ["A", "B", "C"]
#: What a manager waits for a peer before the send fails (the default is 10 s).
PEER_TIMEOUT = 3.0
ELECTION_DEADLINE = 5.0
GET_SELECTOR = "0x6d4ce63c"  # SimpleStorage.get()


def deploy_data(value: int) -> str:
    return str(artifact("SimpleStorage")["bytecode"]) + encode(["uint256"], [value]).hex()


def _handshake_seconds(address: str, port: int) -> float:
    """How long a TCP connect to ``address:port`` takes: one round trip."""
    started = time.monotonic()
    with socket.create_connection((address, port), timeout=10):
        return time.monotonic() - started


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@dataclass(eq=False)  # hashed by identity: its caches are keyed on it
class NamespacedNetwork:
    directory: Path
    links: Topology
    processes: dict[tuple[str, str], subprocess.Popen[bytes]] = field(default_factory=dict)

    # --- files and processes ---------------------------------------------------------

    @cache  # noqa: B019 - one network per module, never freed before the module ends
    def node_config(self, name: str) -> dict[str, Any]:
        return read_document(self.directory / name / "node.toml")

    @cache  # noqa: B019
    def tm_config(self, name: str) -> dict[str, Any]:
        return read_document(self.directory / name / "tm.toml")

    def public_key(self, name: str) -> str:
        return (self.directory / name / "tm" / f"{name}.pub").read_text().strip()

    def start(self, name: str, kind: str) -> None:
        """As on a real host: from the bundle's folder, inside the host's namespace."""
        module, config = (
            ("tx_manager.cli", "tm.toml") if kind == "tm" else ("quorum_node.cli", "node.toml")
        )
        bundle = self.directory / name
        with open(bundle / f"{kind}.log", "ab") as log:
            self.processes[name, kind] = subprocess.Popen(
                self.links.hosts[name].command(
                    sys.executable, "-m", module, "run", "--config", config
                ),
                cwd=bundle,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        if kind == "tm":
            q2t = self.tm_config(name)["q2t"]["port"]
            wait_until(
                lambda: (
                    self._alive(name, kind)
                    and self.links.hosts[name].run(_answers, f"http://127.0.0.1:{q2t}/upcheck")
                ),
                60,
                f"{name}'s manager\n{self.log_tail()}",
            )
        else:
            wait_until(
                lambda: self._alive(name, kind) and self.try_call(name, "eth_chainId"),
                60,
                f"{name}'s node\n{self.log_tail()}",
            )

    def _alive(self, name: str, kind: str) -> bool:
        if self.processes[name, kind].poll() is not None:
            raise AssertionError(f"{name}'s {kind} exited\n{self.log_tail()}")
        return True

    def kill(self, name: str, kind: str) -> None:
        process = self.processes[name, kind]
        process.kill()
        process.wait(10)

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)

    def restart_exited(self) -> None:
        for (name, kind), process in list(self.processes.items()):
            if process.poll() is not None and kind == "tm":
                self.start(name, kind)
        for (name, kind), process in list(self.processes.items()):
            if process.poll() is not None and kind == "node":
                self.start(name, kind)

    def log_tail(self, chars: int = 1500) -> str:
        return "\n".join(
            f"--- {path}:\n{path.read_text(errors='replace')[-chars:]}"
            for path in sorted(self.directory.glob("*/*.log"))
        )

    # --- JSON-RPC, from inside each host ---------------------------------------------

    def call(self, name: str, method: str, params: list[Any] | None = None) -> Any:
        url = f"http://127.0.0.1:{self.node_config(name)['http_port']}"
        reply = self.links.hosts[name].run(rpc, url, method, params, 30.0)
        if "error" in reply:
            raise RpcFailure(method, reply["error"])
        return reply["result"]

    def try_call(self, name: str, method: str, params: list[Any] | None = None) -> Any:
        try:
            return self.call(name, method, params)
        except (OSError, RpcFailure):
            return None

    def error(self, name: str, method: str, params: list[Any]) -> dict[str, Any]:
        try:
            result = self.call(name, method, params)
        except RpcFailure as failure:
            return failure.error
        raise AssertionError(f"{method} succeeded with {result!r}; an error was expected")

    def leader(self, names: list[str], timeout: float) -> str:
        """The one of ``names`` that is minter, once all of ``names`` name it leader."""

        def agreed() -> str | None:
            leaders = {self.try_call(name, "raft_leader") for name in names}
            minters = [n for n in names if self.try_call(n, "raft_role") == "minter"]
            if len(leaders) != 1 or None in leaders or len(minters) != 1:
                return None
            return minters[0] if leaders == {self.node_id(minters[0])} else None

        return str(wait_until(agreed, timeout, f"one agreed Raft leader among {names}"))

    @cache  # noqa: B019
    def node_id(self, name: str) -> str:
        return str(self.call(name, "admin_nodeInfo")["id"])

    @cache  # noqa: B019
    def account(self, name: str) -> str:
        return str(self.call(name, "eth_accounts")[0])

    def head(self, name: str) -> tuple[int, str]:
        block = self.call(name, "eth_getBlockByNumber", ["latest", False])
        return int(block["number"], 16), str(block["hash"])

    def hashes(self, name: str, up_to: int) -> dict[int, str]:
        return {
            height: self.call(name, "eth_getBlockByNumber", [hex(height), False])["hash"]
            for height in range(up_to + 1)
        }

    def wait_same_head(self, timeout: float = 60.0) -> int:
        def same() -> tuple[int, str] | None:
            heads = {self.head(name) for name in NAMES}
            return heads.pop() if len(heads) == 1 else None

        head = wait_until(same, timeout, f"the same head on {NAMES}\n{self.log_tail()}")
        return int(head[0])

    def send_public(self, name: str) -> str:
        transfer = {"from": self.account(name), "to": BURN_ADDRESS, "value": "0x1"}
        return str(self.call(name, "eth_sendTransaction", [transfer]))

    def send_private(self, name: str, value: int, recipients: list[str]) -> str:
        keys = [self.public_key(recipient) for recipient in recipients]
        deploy = {"from": self.account(name), "data": deploy_data(value), "privateFor": keys}
        return str(self.call(name, "eth_sendTransaction", [deploy]))

    def receipt(self, name: str, tx_hash: str, timeout: float = 30.0) -> dict[str, Any]:
        return dict(
            wait_until(
                lambda: self.try_call(name, "eth_getTransactionReceipt", [tx_hash]),
                timeout,
                f"a receipt for {tx_hash} on {name}",
            )
        )

    def stored(self, name: str, contract: str) -> int:
        result = self.call(name, "eth_call", [{"to": contract, "data": GET_SELECTOR}, "latest"])
        return int(result, 16) if result not in ("0x", None) else -1


def _init(directory: Path, links: Topology) -> None:
    subprocess.run(
        [sys.executable, "-m", "quorum_node.qnet.cli", "init", "--dir", str(directory)]
        + ["--names", ",".join(NAMES)]
        + ["--hosts", ",".join(links.hosts[name].address for name in NAMES)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    for name in NAMES:
        path = directory / name / "tm.toml"
        manager = read_document(path)
        manager["peer_timeout"] = PEER_TIMEOUT
        write_document(path, manager)


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NamespacedNetwork]:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with topology(NAMES) as links:
        running = NamespacedNetwork(tmp_path_factory.mktemp("netns") / "net", links)
        try:
            _init(running.directory, links)
            for name in NAMES:
                running.start(name, "tm")
            for name in NAMES:
                running.start(name, "node")
            running.leader(NAMES, 60)
            yield running
        finally:
            running.stop_all()


@pytest.fixture
def net(network: NamespacedNetwork) -> Iterator[NamespacedNetwork]:
    """The module's network, whole again after each test: links up, undelayed and
    unfiltered, every process running, one head everywhere."""
    network.wait_same_head()
    yield network
    network.links.restore()
    network.restart_exited()
    network.leader(NAMES, 30)


def test_a_leader_cut_off_is_replaced_and_no_block_is_ever_replaced(
    net: NamespacedNetwork,
) -> None:
    old = net.leader(NAMES, 30)
    majority = [name for name in NAMES if name != old]
    net.receipt(old, net.send_public(old))
    height = net.wait_same_head()
    before = net.hashes(old, height)

    net.links.cut(old)
    cut_at = time.monotonic()
    new = net.leader(majority, ELECTION_DEADLINE)
    elected_after = time.monotonic() - cut_at
    print(f"\n{old} cut off; {new} leads after {elected_after:.2f} s")

    # the minority takes a transaction but mints nothing; the majority goes on
    try:
        stranded: str | None = net.send_public(old)
    except RpcFailure:
        stranded = None
    committed = net.send_public(new)
    majority_receipts = {name: net.receipt(name, committed) for name in majority}
    assert len({r["blockHash"] for r in majority_receipts.values()}) == 1
    assert net.head(old) == (height, before[height]), "the cut-off leader minted"
    if stranded is not None:
        waiting = net.call(old, "eth_getTransactionByHash", [stranded])
        assert waiting is not None and waiting["blockNumber"] is None, waiting
    assert net.hashes(old, height) == before

    net.links.heal(old)
    head = net.wait_same_head()
    assert head > height
    after = {name: net.hashes(name, head) for name in NAMES}
    assert after[old] == after[majority[0]] == after[majority[1]]
    assert {h: after[old][h] for h in before} == before, "a block was replaced"
    assert net.receipt(old, committed)["blockHash"] == majority_receipts[new]["blockHash"]
    if stranded is not None:
        included = net.try_call(old, "eth_getTransactionReceipt", [stranded])
        print(f"the transaction the cut-off leader took: {'included' if included else 'dropped'}")


def _latencies(
    net: NamespacedNetwork, sender: str, recipient: str
) -> tuple[list[float], list[float]]:
    """Seconds from send to receipt: 5 public transactions (at the sender), then 3
    private ones to ``recipient`` (at the recipient)."""
    public, private = [], []
    for _ in range(5):
        started = time.monotonic()
        net.receipt(sender, net.send_public(sender))
        public.append(time.monotonic() - started)
    for value in range(3):
        started = time.monotonic()
        net.receipt(recipient, net.send_private(sender, value, [recipient]), timeout=60)
        private.append(time.monotonic() - started)
    return public, private


def _handshakes(net: NamespacedNetwork) -> dict[tuple[str, str], float]:
    """A TCP connect from each host to each other's manager P2P port, in seconds."""
    hosts = net.links.hosts
    return {
        (client, server): hosts[client].run(
            _handshake_seconds, hosts[server].address, int(net.tm_config(server)["p2p"]["port"])
        )
        for client in NAMES
        for server in NAMES
        if client != server
    }


def _milliseconds(seconds: list[float]) -> str:
    return f"p50 {statistics.median(seconds) * 1000:.0f} ms (max {max(seconds) * 1000:.0f})"


def test_transactions_commit_with_100ms_more_on_every_link(net: NamespacedNetwork) -> None:
    sender = next(name for name in NAMES if net.try_call(name, "raft_role") != "minter")
    recipient = next(name for name in NAMES if name != sender)
    direct = _handshakes(net)
    public_direct, private_direct = _latencies(net, sender, recipient)
    with delayed_links(net.links, NAMES, 100) as how:
        delayed = _handshakes(net)
        public, private = _latencies(net, sender, recipient)
    after = _handshakes(net)
    print(
        f"\nwith 100 ms more on every link ({how} delay), without -> with: TCP handshake "
        f"max {max(direct.values()) * 1000:.1f} ms -> {min(delayed.values()) * 1000:.0f} to "
        f"{max(delayed.values()) * 1000:.0f} ms; public send -> receipt "
        f"{_milliseconds(public_direct)} -> {_milliseconds(public)}; private send -> "
        f"recipient's receipt {_milliseconds(private_direct)} -> {_milliseconds(private)}"
    )
    slow = {pair: seconds for pair, seconds in delayed.items() if seconds < 0.2}
    assert not slow, f"a round trip without 100 ms each way: {slow}"
    assert min(public) >= 0.1, "the delay did not apply to the forwarded transaction"
    assert max(after.values()) < 0.1, f"still delayed after the block: {after}"


def test_a_manager_that_cannot_be_reached_fails_sends_to_it_and_nothing_else(
    net: NamespacedNetwork,
) -> None:
    sender, other, unreachable = NAMES
    port = int(net.tm_config(unreachable)["p2p"]["port"])
    net.links.drop_port(unreachable, port)
    started = time.monotonic()
    error = net.error(
        sender,
        "eth_sendTransaction",
        [
            {
                "from": net.account(sender),
                "data": deploy_data(7),
                "privateFor": [net.public_key(unreachable)],
            }
        ],
    )
    failed_after = time.monotonic() - started
    print(f"\nsend to {unreachable}'s dropped manager failed after {failed_after:.1f} s: {error}")
    assert error["code"] == -32000, error
    assert net.public_key(unreachable) in error["message"], error
    assert f"{net.tm_config(unreachable)['advertised_url']} did not acknowledge" in error["message"]
    assert failed_after < PEER_TIMEOUT * 4, error

    # between the others private transactions go through, and the public chain everywhere
    deployed = net.send_private(sender, 8, [other])
    public = net.send_public(unreachable)
    contract = net.receipt(other, deployed)["contractAddress"]
    for name in NAMES:
        net.receipt(name, deployed)
        net.receipt(name, public)
    assert net.stored(sender, contract) == net.stored(other, contract) == 8
    assert net.stored(unreachable, contract) in (-1, 0)

    net.links.allow_port(unreachable, port)
    back = net.send_private(sender, 9, [unreachable])
    contract = net.receipt(unreachable, back, timeout=60)["contractAddress"]
    assert net.stored(unreachable, contract) == 9


def test_kill_9_during_a_partition_loses_no_acknowledged_transaction_or_payload(
    net: NamespacedNetwork,
) -> None:
    leader = net.leader(NAMES, 30)
    cut = next(name for name in NAMES if name != leader)
    sender, killed = leader, next(name for name in NAMES if name not in (leader, cut))
    net.links.cut(cut)
    sent = {net.send_private(sender, 100 + index, [killed]): 100 + index for index in range(2)}
    for tx_hash in sent:
        net.receipt(killed, tx_hash)
    # acknowledged by both managers (the send returned), then at once SIGKILL
    last = net.send_private(sender, 102, [killed])
    sent[last] = 102
    net.kill(killed, "node")
    net.kill(killed, "tm")

    net.start(killed, "tm")
    net.start(killed, "node")
    net.links.heal(cut)
    net.wait_same_head()
    for tx_hash, value in sent.items():
        receipts = {name: net.receipt(name, tx_hash, timeout=60) for name in NAMES}
        assert len({r["blockHash"] for r in receipts.values()}) == 1, receipts
        contract = receipts[sender]["contractAddress"]
        assert net.stored(sender, contract) == net.stored(killed, contract) == value
        payload_hash = net.call(killed, "eth_getTransactionByHash", [tx_hash])["input"]
        assert net.call(killed, "eth_getQuorumPayload", [payload_hash]) != "0x"
        assert net.call(cut, "eth_getQuorumPayload", [payload_hash]) == "0x"
