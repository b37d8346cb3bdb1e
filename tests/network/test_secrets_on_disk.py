"""Secrets on disk, through the real commands, under a umask that would make every file
world-readable: ``qnet up`` (node keys, keystores, passwords, manager keys, and the
layout and network files that list development keys), ``tx-manager keygen`` and
``quorum-node account new``.

A file counts as holding a secret by its name (the kinds of secret files we write) and,
independently, by its content: any file under the network folder that contains one of
the network's private keys or passwords must be 0600, whatever its name (a log that
printed a key would fail here).
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from quorum_node.chain.genesis import Genesis
from tests.network.harness import QnetNetwork
from tests.support.node_process import wait_until

pytestmark = pytest.mark.integration

SECRET_NAMES = {"nodekey", "password.txt", "layout.json", "network.json"}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def is_secret_by_name(path: Path) -> bool:
    return path.name in SECRET_NAMES or path.suffix == ".key" or path.parent.name == "keystore"


def network_secrets(directory: Path) -> list[bytes]:
    """Every private key and password of the network, as they would appear in a file."""
    layout = json.loads((directory / "layout.json").read_text())
    found = []
    for participant in layout["participants"]:
        found.append(participant["account_private_key"].removeprefix("0x").encode())
        name = participant["name"]
        found.append((directory / name / "password.txt").read_bytes().strip())
        found.append((directory / name / "data" / "nodekey").read_bytes().strip())
        key_document = json.loads((directory / name / "tm" / f"{name}.key").read_text())
        found.append(key_document["data"]["bytes"].encode())
        found.append(base64.b64decode(key_document["data"]["bytes"]).hex().encode())
    return found


@pytest.fixture(scope="module")
def network_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``qnet up`` of two participants with managers, into a folder qnet creates itself,
    with every process started under umask 000; stopped again before the scan."""
    directory = tmp_path_factory.mktemp("secrets") / "net"
    network = QnetNetwork(directory)
    previous = os.umask(0)
    try:
        network.up(2, tx_managers=True)
    finally:
        os.umask(previous)
        network.down()
    return directory


def test_every_secret_file_of_a_qnet_network_is_0600(network_dir: Path) -> None:
    files = [p for p in network_dir.rglob("*") if p.is_file() and not p.is_symlink()]
    by_name = [p for p in files if is_secret_by_name(p)]
    # the kinds of secrets a network with managers must have, so that this can fail
    names = {p.name for p in by_name} | {p.parent.name for p in by_name}
    assert {"nodekey", "password.txt", "layout.json", "network.json"} <= names
    assert "keystore" in names and any(p.suffix == ".key" for p in by_name)
    loose = {str(p.relative_to(network_dir)): oct(mode(p)) for p in by_name if mode(p) != 0o600}
    assert not loose, f"secret files not 0600: {loose}"


def test_no_file_holding_a_key_or_password_is_readable_by_others(network_dir: Path) -> None:
    secrets = network_secrets(network_dir)
    holding = []
    for path in network_dir.rglob("*"):
        if path.is_file() and not path.is_symlink():
            content = path.read_bytes()
            if any(secret in content for secret in secrets):
                holding.append(path)
    assert holding  # layout.json at least
    loose = {str(p.relative_to(network_dir)): oct(mode(p)) for p in holding if mode(p) != 0o600}
    assert not loose, f"files holding a private key or password, not 0600: {loose}"


def test_no_two_participants_share_a_secret_file(network_dir: Path) -> None:
    participants = [p for p in network_dir.iterdir() if (p / "data" / "nodekey").exists()]
    assert len(participants) == 2
    one, other = (
        {p: p.read_bytes().strip() for p in folder.rglob("*") if p.is_file() and mode(p) == 0o600}
        for folder in participants
    )
    assert len(one) >= 4 and len(other) >= 4  # node key, password, keystore, manager key
    for path, secret in one.items():
        assert all(secret not in content for content in other.values()), path


def test_every_folder_holding_secrets_is_0700(network_dir: Path) -> None:
    folders = {network_dir}
    for path in network_dir.rglob("*"):
        if path.is_file() and is_secret_by_name(path):
            folder = path.parent
            while folder != network_dir:
                folders.add(folder)
                folder = folder.parent
    assert len(folders) > 4  # the root, each participant, data, keystore, tm
    loose = {str(f): oct(mode(f)) for f in folders if mode(f) != 0o700}
    assert not loose, f"folders holding secrets not 0700: {loose}"


def run_under_umask_000(*command: str) -> subprocess.CompletedProcess[str]:
    previous = os.umask(0)
    try:
        return subprocess.run(
            [sys.executable, "-m", *command], capture_output=True, text=True, timeout=60
        )
    finally:
        os.umask(previous)


def test_tx_manager_keygen_writes_0600_in_a_0700_folder(tmp_path: Path) -> None:
    out = tmp_path / "keys" / "alice"
    result = run_under_umask_000("tx_manager.cli", "keygen", "--name", "alice", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert mode(out / "alice.key") == 0o600
    assert mode(out) == 0o700 and mode(tmp_path / "keys") == 0o700
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []


def test_quorum_node_account_new_writes_0600_in_a_0700_keystore(tmp_path: Path) -> None:
    password = tmp_path / "password.txt"
    password.write_text("pw\n")
    datadir = tmp_path / "data"
    result = run_under_umask_000(
        "quorum_node.cli",
        "account",
        "new",
        "--datadir",
        str(datadir),
        "--password-file",
        str(password),
    )
    assert result.returncode == 0, result.stderr
    (keyfile,) = (datadir / "keystore").iterdir()
    assert result.stdout.strip()[2:].lower() in keyfile.name.lower()
    assert mode(keyfile) == 0o600
    assert mode(datadir / "keystore") == 0o700


def test_quorum_node_run_creates_its_datadir_0700(tmp_path: Path) -> None:
    """The data folder holds the node key and the keystore."""
    genesis = tmp_path / "genesis.json"
    Genesis(chain_id=1337, alloc={}).save(genesis)
    datadir = tmp_path / "new" / "data"
    previous = os.umask(0)
    try:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "quorum_node.cli",
                "run",
                "--datadir",
                str(datadir),
                "--genesis",
                str(genesis),
                "--http-port",
                "0",
                "--ws-port",
                "0",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    finally:
        os.umask(previous)
    try:
        wait_until((datadir / "endpoints.json").exists, 60, "the node to start")
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert mode(datadir) == 0o700 and mode(datadir.parent) == 0o700
