"""Q2T decrypts for whoever asks: loopback by default, beyond it only with mutual TLS."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from quorum_shared.addresses import is_loopback_host as is_loopback
from tests.support.pki import make_ca, make_cert
from tests.tx_manager.conftest import ManagerFactory
from tests.tx_manager.test_cli import assert_one_line_failure, cli
from tx_manager.client import ManagerUnavailable, SyncQ2TClient
from tx_manager.config import parse_config
from tx_manager.errors import ManagerConfigError
from tx_manager.tls import q2t_client_context

BASE = {"keys": [{"public": "a.pub", "private": "a.key"}]}


@pytest.mark.parametrize("host", ["127.0.0.1", "127.9.9.9", "::1", "[::1]", "localhost"])
def test_loopback_hosts_need_no_tls(host: str) -> None:
    assert is_loopback(host)
    assert parse_config({**BASE, "q2t": {"host": host}}, Path("/tmp")).q2t_tls is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "192.168.1.1", "tm.example"])
def test_other_hosts_are_refused_without_tls(host: str) -> None:
    assert not is_loopback(host)
    with pytest.raises(ManagerConfigError, match="not a loopback address"):
        parse_config({**BASE, "q2t": {"host": host}}, Path("/tmp"))


def test_a_unix_socket_needs_no_tls() -> None:
    config = parse_config({**BASE, "q2t": {"unix_socket": "tm.ipc"}}, Path("/tmp"))
    assert config.q2t.unix_socket == Path("/tmp/tm.ipc")


def test_q2t_tls_needs_cert_key_and_ca() -> None:
    with pytest.raises(ManagerConfigError, match="q2t.tls needs cert, key and ca"):
        parse_config(
            {**BASE, "q2t": {"host": "0.0.0.0", "tls": {"cert": "c.pem", "key": "c.key"}}},
            Path("/tmp"),
        )
    config = parse_config(
        {**BASE, "q2t": {"host": "0.0.0.0", "tls": {"cert": "c.pem", "key": "k", "ca": "ca"}}},
        Path("/tmp"),
    )
    assert config.q2t_tls is not None and config.q2t_tls.ca == Path("/tmp/ca")


@pytest.mark.integration
def test_run_refuses_a_non_loopback_q2t_without_tls(managers: ManagerFactory) -> None:
    manager = managers.create("exposed", q2t={"host": "0.0.0.0", "port": 0})
    manager.write_config()
    result = cli("run", "--config", str(manager.config_path))
    assert result.returncode == 2
    assert_one_line_failure(result, "q2t.host '0.0.0.0' is not a loopback address", "[q2t.tls]")


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, tuple[Path, Path]]:
    directory = tmp_path / "pki"
    directory.mkdir()
    make_ca(directory, "ca")
    make_ca(directory, "rogue-ca")
    made = {name: make_cert(directory, name, "ca") for name in ("manager", "node")}
    made["rogue"] = make_cert(directory, "rogue", "rogue-ca")
    return {
        "ca": (directory / "ca.pem", directory / "ca.key"),
        **{name: (pem, key) for name, (pem, key, _) in made.items()},
    }


@pytest.mark.integration
def test_mutual_tls_q2t_beyond_loopback(
    managers: ManagerFactory, pki: dict[str, tuple[Path, Path]]
) -> None:
    ca = pki["ca"][0]
    cert, key = pki["manager"]
    manager = managers.start(
        "tls-q2t",
        q2t={
            "host": "0.0.0.0",
            "port": 0,
            "tls": {"cert": str(cert), "key": str(key), "ca": str(ca)},
        },
    )
    assert manager.q2t.startswith("https://127.0.0.1:")
    node_context = q2t_client_context(*pki["node"], ca)
    with SyncQ2TClient(manager.q2t, ssl_context=node_context) as client:
        assert client.upcheck()
        assert client.keys() == [manager.public_key]
        sent = client.send(b"over mutual tls", None, [])
        received = client.receive(sent.key)
        assert received is not None and received.payload == b"over mutual tls"

    # A client that trusts the server but presents no certificate: the handshake fails.
    anonymous = ssl.create_default_context(cafile=str(ca))
    with SyncQ2TClient(manager.q2t, ssl_context=anonymous) as client:
        assert not client.upcheck()
        with pytest.raises(ManagerUnavailable):
            client.receive(sent.key)
    # A certificate from another CA: refused too.
    with SyncQ2TClient(manager.q2t, ssl_context=q2t_client_context(*pki["rogue"], ca)) as client:
        assert not client.upcheck()
    # Plain HTTP: refused.
    with SyncQ2TClient(manager.q2t.replace("https://", "http://")) as client:
        assert not client.upcheck()

    # `tx-manager resend` reaches a TLS Q2T with the manager's own certificate.
    resend = subprocess.run(
        [sys.executable, "-m", "tx_manager.cli", "resend", "--config", str(manager.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert resend.returncode == 0, resend.stderr
    assert "recovered 0 envelopes" in resend.stdout
    assert json.loads(manager.ports_file.read_text())["q2t"] == manager.q2t
