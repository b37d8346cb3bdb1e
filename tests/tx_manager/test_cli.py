"""CLI: keygen (unlocked and locked) and clear one-line failures for bad setups."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tx_manager.conftest import ManagerFactory, env_without
from tx_manager.errors import WrongPassword
from tx_manager.keyfile import read_keypair, read_public_key

FAST_KDF = ["--kdf-memory-kib", "1024", "--kdf-iterations", "1"]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tx_manager.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def assert_one_line_failure(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_keygen_unlocked(tmp_path: Path) -> None:
    result = cli("keygen", "--name", "alice", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    pub = tmp_path / "alice.pub"
    assert len(pub.read_text().strip()) == 44 and pub.read_text().count("\n") == 1
    document = json.loads((tmp_path / "alice.key").read_text())
    assert document["type"] == "unlocked"
    keypair = read_keypair(pub, tmp_path / "alice.key", None)
    assert keypair.public == read_public_key(pub)
    assert document["data"]["bytes"] not in result.stdout + result.stderr
    assert (tmp_path / "alice.key").stat().st_mode & 0o077 == 0
    again = cli("keygen", "--name", "alice", "--out", str(tmp_path))
    assert_one_line_failure(again, "already exists")


def test_keygen_locked_by_file_and_env(tmp_path: Path) -> None:
    password_file = tmp_path / "pw"
    password_file.write_text("correct horse\n")
    result = cli(
        "keygen",
        "--name",
        "f",
        "--out",
        str(tmp_path),
        "--password-file",
        str(password_file),
        *FAST_KDF,
    )
    assert result.returncode == 0, result.stderr
    document = json.loads((tmp_path / "f.key").read_text())
    assert document["type"] != "unlocked" and "bytes" not in document["data"]
    read_keypair(tmp_path / "f.pub", tmp_path / "f.key", b"correct horse")
    with pytest.raises(WrongPassword):
        read_keypair(tmp_path / "f.pub", tmp_path / "f.key", b"wrong")
    env = env_without() | {"TM_TEST_PW": "from env"}
    result = cli(
        "keygen",
        "--name",
        "e",
        "--out",
        str(tmp_path),
        "--password-env",
        "TM_TEST_PW",
        *FAST_KDF,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    read_keypair(tmp_path / "e.pub", tmp_path / "e.key", b"from env")


def _config(managers: ManagerFactory, name: str, **settings: object) -> Path:
    manager = managers.create(name, **settings)
    manager.write_config()
    return manager.config_path


@pytest.mark.integration
def test_missing_key_file(managers: ManagerFactory) -> None:
    config = _config(managers, "nokey")
    (config.parent / "nokey.key").unlink()
    assert_one_line_failure(cli("run", "--config", str(config)), "nokey.key")


@pytest.mark.integration
def test_wrong_password(managers: ManagerFactory, tmp_path: Path) -> None:
    keys = tmp_path / "keys-locked"
    (tmp_path / "pw").write_text("right")
    cli(
        "keygen",
        "--name",
        "k",
        "--out",
        str(keys),
        "--password-file",
        str(tmp_path / "pw"),
        *FAST_KDF,
    )
    (tmp_path / "bad").write_text("wrong")
    config = _config(
        managers,
        "locked",
        keys=[
            {
                "public": str(keys / "k.pub"),
                "private": str(keys / "k.key"),
                "password_file": str(tmp_path / "bad"),
            }
        ],
    )
    assert_one_line_failure(cli("run", "--config", str(config)), "wrong password")
    env = env_without("TM_NOT_SET")
    config = _config(
        managers,
        "locked-env",
        keys=[
            {
                "public": str(keys / "k.pub"),
                "private": str(keys / "k.key"),
                "password_env": "TM_NOT_SET",
            }
        ],
    )
    assert_one_line_failure(cli("run", "--config", str(config), env=env), "TM_NOT_SET")


@pytest.mark.integration
def test_port_in_use(managers: ManagerFactory) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = _config(managers, "busy", p2p={"host": "127.0.0.1", "port": port})
        assert_one_line_failure(cli("run", "--config", str(config)), "in use", str(port))


@pytest.mark.integration
def test_metrics_port_in_use_and_an_unreachable_postgresql(managers: ManagerFactory) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = _config(managers, "metrics")
        result = cli("run", "--config", str(config), "--metrics-port", str(port))
        assert_one_line_failure(result, "metrics", "in use", str(port))
    # Nothing listens there any more: PostgreSQL is refused at once, the password unsaid.
    config = _config(managers, "pg", store=f"postgresql://tm:secret@127.0.0.1:{port}/tm")
    result = cli("run", "--config", str(config))
    assert_one_line_failure(result, "cannot open store", "postgresql://tm@127.0.0.1")
    assert "secret" not in result.stderr


@pytest.mark.integration
def test_unreadable_configs(tmp_path: Path) -> None:
    assert_one_line_failure(cli("run", "--config", str(tmp_path / "missing.toml")), "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("keys = [ this is not toml")
    assert_one_line_failure(cli("run", "--config", str(broken)), "not valid")
    no_keys = tmp_path / "nokeys.json"
    no_keys.write_text(json.dumps({"peers": []}))
    assert_one_line_failure(cli("run", "--config", str(no_keys)), "keys")
    bad_type = tmp_path / "badtype.json"
    bad_type.write_text(json.dumps({"keys": [{"public": "a", "private": "b"}], "peers": "x"}))
    assert_one_line_failure(cli("run", "--config", str(bad_type)), "peers")


@pytest.mark.integration
def test_toml_config_and_unix_socket(managers: ManagerFactory, tmp_path: Path) -> None:
    """The TOML form, with Q2T on a Unix socket, starts and answers through the client."""
    from tx_manager.client import SyncQ2TClient

    manager = managers.create("toml")
    socket_path = manager.directory / "tm.ipc"
    toml_path = manager.directory / "tm.toml"
    toml_path.write_text(
        f"""
keys = [{{ public = "toml.pub", private = "toml.key" }}]
peers = []
recover = "never"
[q2t]
unix_socket = "{socket_path}"
[p2p]
host = "127.0.0.1"
port = 0
"""
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "tx_manager.cli", "run", "--config", str(toml_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        second = process.stdout.readline()
        assert first.startswith("tx-manager Q2T listening on unix:"), first
        assert second.startswith("tx-manager P2P listening on http://127.0.0.1:"), second
        with SyncQ2TClient(f"unix:{socket_path}") as client:
            assert client.upcheck()
            assert client.keys() == [manager.public_key]
            sent = client.send(b"self", None, [])
            assert client.receive(sent.key) is not None
    finally:
        process.terminate()
        process.communicate(timeout=10)
    assert process.returncode == 0
