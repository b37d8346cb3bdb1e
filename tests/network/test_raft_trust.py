"""One member cannot take over another: the Raft trust boundary, through real processes.

A ``qnet`` network of three participants with their managers. The attacker is a
participant using only what its own bundle holds (node3's node key from
``node3/data/nodekey``), or an outsider with a key of its own. Each test checks what
the issue asked: a pickle that would create a file, sent as the first bytes of a Raft
connection, after a proper handshake, as a log entry through the leader, as entries a
"leader" appends on a follower, and to every other port the node and the manager
listen on, creates nothing, is refused with the sender named, and the chain goes on; a
member claiming another member's identity is refused while the real member's link
keeps working; a vote request a thousand terms ahead names the member in the log and
in ``quorum_raft_peer_misbehaviour_total``, and the cluster recovers.

``test_no_two_bundles_share_a_secret`` and the refusal of folders an earlier version
made need no running network.
"""

from __future__ import annotations

import socket
import stat
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import combinations
from pathlib import Path

import pytest

from quorum_node.consensus.raft_wire import REGULAR
from quorum_node.p2p.handshake import HandshakeError
from quorum_node.p2p.identity import NodeKey
from quorum_shared.config_files import read_document
from tests.network.harness import QnetNetwork, running_network
from tests.support.node_process import wait_until
from tests.support.raft_peer import RaftPeer, pickle_that_creates, pysyncobj_frame

ATTACKER = "node3"


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QnetNetwork]:
    with running_network(tmp_path_factory.mktemp("trust"), 3, tx_managers=True) as network:
        yield network


def raft_address(network: QnetNetwork, name: str) -> tuple[str, int]:
    config = network.node_config(name)
    return str(config["p2p_host"]), int(config["raft_port"])


def genesis_hash(network: QnetNetwork) -> bytes:
    return bytes.fromhex(network.call("node1", "eth_getBlockByNumber", ["0x0", False])["hash"][2:])


def own_key(network: QnetNetwork, name: str = ATTACKER) -> NodeKey:
    """What the participant's own bundle holds."""
    return NodeKey(bytes.fromhex((network.directory / name / "data" / "nodekey").read_text()))


@contextmanager
def playing_attacker(network: QnetNetwork) -> Iterator[None]:
    """The attacker's own node is stopped while the test speaks with its key: otherwise
    that node's link, dialled again, would replace the test's (the newest link from a
    member wins) in the middle of the test."""
    network.stop(ATTACKER, only="node")
    try:
        yield
    finally:
        network.start(ATTACKER, only="node")


def peer(network: QnetNetwork, target: str, key: NodeKey, claim: str | None = None) -> RaftPeer:
    return RaftPeer(raft_address(network, target), key, genesis_hash(network), claim=claim)


def node_log(network: QnetNetwork, name: str) -> str:
    return (network.directory / name / "node.log").read_text()


def logged(network: QnetNetwork, name: str, text: str) -> None:
    wait_until(lambda: text in node_log(network, name), 15, f"{text!r} in {name}'s log")


def misbehaviour(network: QnetNetwork, name: str, peer_label: str, kind: str) -> float:
    """``quorum_raft_peer_misbehaviour_total{peer,kind}`` on ``name``'s /metrics."""
    with urllib.request.urlopen(network.node(name)["metrics_url"], timeout=10) as response:
        text = response.read().decode()
    wanted = f'quorum_raft_peer_misbehaviour_total{{kind="{kind}",peer="{peer_label}"}}'
    for line in text.splitlines():
        if line.startswith(wanted):
            return float(line.split()[-1])
    return 0.0


@pytest.mark.integration
@pytest.mark.slow
def test_a_pickle_to_the_raft_port_creates_nothing(network: QnetNetwork, tmp_path: Path) -> None:
    marker = tmp_path / "created-by-raft"
    key = own_key(network)
    # As the first bytes of a connection, framed as pysyncobj's transport did.
    with peer(network, "node1", key) as first:
        first.send_raw(pysyncobj_frame(marker))
        assert first.closed_by_node()
    logged(network, "node1", "refused a raft link with 127.0.0.1:")
    # After a proper handshake, with node3's own key: refused, and node3 named.
    with playing_attacker(network), peer(network, "node1", key) as member:
        member.handshake(expect=network.node_id("node1"))
        member.send_plaintext(pickle_that_creates(marker))
        assert member.closed_by_node()
    logged(network, "node1", f"raft member node {key.node_id[:16]}…")
    assert misbehaviour(network, "node1", key.node_id[:16], "undecodable") >= 1
    assert not marker.exists()
    network.everyone_mines()


@pytest.mark.integration
@pytest.mark.slow
def test_a_pickled_log_entry_never_enters_the_log(network: QnetNetwork, tmp_path: Path) -> None:
    marker = tmp_path / "created-by-an-entry"
    entry = bytes([REGULAR]) + pickle_that_creates(marker)
    key = own_key(network)
    with playing_attacker(network):
        leader = network.leader([n for n in network.names if n != ATTACKER])
        follower = next(name for name in network.names if name not in (leader, ATTACKER))
        # Through the leader, as a follower submits a command...
        with peer(network, leader, key) as member:
            member.handshake()
            member.send_message({"type": "apply_command", "command": entry, "request_id": 1})
            assert member.closed_by_node()
        logged(network, leader, f"raft member node {key.node_id[:16]}…")
        assert misbehaviour(network, leader, key.node_id[:16], "bad_command") >= 1
        # ...and appended on a follower by a member that plays leader.
        term = int(raft_term(network, follower))
        with peer(network, follower, key) as member:
            member.handshake()
            member.send_message(
                {
                    "type": "append_entries",
                    "term": term,
                    "commit_index": 0,
                    "prevLogIdx": 1,
                    "prevLogTerm": 0,
                    "entries": [(entry, 2, term)],
                }
            )
            assert member.closed_by_node()
        assert misbehaviour(network, follower, key.node_id[:16], "bad_command") >= 1
    assert not marker.exists()
    network.everyone_mines()


def raft_term(network: QnetNetwork, name: str) -> float:
    """The node's current Raft term, from its /metrics."""
    with urllib.request.urlopen(network.node(name)["metrics_url"], timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("quorum_raft_term "):
                return float(line.split()[-1])
    raise AssertionError(f"{name} reports no quorum_raft_term")


def listening_ports(network: QnetNetwork, name: str) -> dict[str, int]:
    """Every port the participant's node and manager listen on, Raft's aside."""
    node = network.node_config(name)
    manager = read_document(network.directory / name / "tm.toml")
    return {
        "JSON-RPC HTTP": int(node["http_port"]),
        "JSON-RPC WebSocket": int(node["ws_port"]),
        "node p2p": int(node["p2p_port"]),
        "node metrics": int(node["metrics_port"]),
        "manager Q2T": int(manager["q2t"]["port"]),
        "manager P2P": int(manager["p2p"]["port"]),
        "manager metrics": int(manager["metrics"]["port"]),
    }


@pytest.mark.integration
@pytest.mark.slow
def test_a_pickle_to_every_other_port_creates_nothing(network: QnetNetwork, tmp_path: Path) -> None:
    marker = tmp_path / "created-elsewhere"
    payload = pickle_that_creates(marker)
    for kind, port in listening_ports(network, "node1").items():
        for data in (
            payload,
            pysyncobj_frame(marker),
            b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
            + payload,
        ):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
                connection.sendall(data)
                connection.shutdown(socket.SHUT_WR)
                try:
                    while connection.recv(65536):
                        pass
                except OSError:
                    pass
        assert not marker.exists(), kind
    network.everyone_mines()


@pytest.mark.integration
@pytest.mark.slow
def test_a_member_cannot_claim_to_be_another(network: QnetNetwork) -> None:
    victim, target = "node1", "node2"
    with peer(network, target, own_key(network), claim=network.node_id(victim)) as impostor:
        with pytest.raises(HandshakeError):
            impostor.handshake()
        impostor.send_frame(bytes(16))
        assert impostor.closed_by_node()
    logged(network, target, f"(claiming to be node {network.node_id(victim)[:16]}…)")
    assert misbehaviour(network, target, "unknown", "refused_link") >= 1
    assert misbehaviour(network, target, network.node_id(victim)[:16], "refused_link") == 0
    network.everyone_mines()  # node1's own link to node2 still carries its traffic


@pytest.mark.integration
@pytest.mark.slow
def test_a_vote_request_a_thousand_terms_ahead_is_named(network: QnetNetwork) -> None:
    key = own_key(network)
    network.stop(ATTACKER)  # the participant itself plays its node
    try:
        term = int(raft_term(network, "node1"))
        with peer(network, "node1", key) as member:
            member.handshake()
            member.send_message(
                {
                    "type": "request_vote",
                    "term": term + 1000,
                    "last_log_index": 0,
                    "last_log_term": 0,
                }
            )
            wait_until(
                lambda: misbehaviour(network, "node1", key.node_id[:16], "absurd_term") >= 1,
                15,
                "the absurd term counted against node3",
            )
        logged(network, "node1", f"raft member node {key.node_id[:16]}…")
        assert "asked for a vote 1000 terms ahead" in node_log(network, "node1")
    finally:
        network.start(ATTACKER)
    network.leader()
    network.everyone_mines()


# --- no running network needed ------------------------------------------------------


def qnet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quorum_node.qnet_command", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def secret_files(bundle: Path) -> dict[Path, bytes]:
    """Every file of the bundle written as a secret (0600), with its content."""
    return {
        path: path.read_bytes()
        for path in bundle.rglob("*")
        if path.is_file() and stat.S_IMODE(path.stat().st_mode) == 0o600
    }


@pytest.mark.integration
def test_no_two_bundles_share_a_secret(tmp_path: Path) -> None:
    directory = tmp_path / "net"
    result = qnet("init", "--dir", str(directory), "--names", "A,B,C")
    assert result.returncode == 0, result.stderr
    bundles = {name: secret_files(directory / name) for name in "ABC"}
    for name, files in bundles.items():
        kinds = {path.name for path in files} | {path.parent.name for path in files}
        # node key, account password and keystore, manager key, TLS key: each its own
        assert {"nodekey", "password.txt", "keystore", f"{name}.key"} <= kinds, kinds
        assert not any("raft-password" in path.name for path in (directory / name).rglob("*"))
    for ones, others in combinations(bundles.values(), 2):
        for path, content in ones.items():
            secret = content.strip()
            for other_path, other_content in others.items():
                assert secret not in other_content, f"{path} is also in {other_path}"
    for path in directory.rglob("*"):
        assert "raft-password" not in path.name


def test_a_folder_an_earlier_version_made_fails_with_one_line(tmp_path: Path) -> None:
    directory = tmp_path / "old"
    directory.mkdir()
    (directory / "layout.json").write_text("{}")
    (directory / "raft-password.txt").write_text("shared\n")
    result = qnet("start", "--dir", str(directory), "node1")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "recreate it" in result.stderr

    config = tmp_path / "node.toml"
    config.write_text(
        'datadir = "data"\ngenesis = "genesis.json"\nconsensus = "raft"\n'
        'raft_password_file = "raft-password.txt"\n'
    )
    node = subprocess.run(
        [sys.executable, "-m", "quorum_node.cli", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert node.returncode == 2
    assert node.stderr.count("\n") == 1 and "qnet init" in node.stderr
    assert not (tmp_path / "data").exists()
