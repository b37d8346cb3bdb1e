"""A node whose manager's Q2T API requires mutual TLS (what a manager beyond loopback
must use): with its client certificate (`--tm-tls`, node.json `tm_tls`) private
transactions work; without it the node cannot reach the manager and says so."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_abi import encode

from tests.privacy.conftest import artifact
from tests.support.localnet import ManagerFactory
from tests.support.node_process import NodeProcess, rpc, wait_until
from tests.support.pki import make_ca, make_cert

pytestmark = pytest.mark.integration


@pytest.fixture
def tls_manager(tmp_path: Path) -> Iterator[tuple[str, str, tuple[Path, Path, Path]]]:
    """(Q2T URL, public key, the node's (cert, key, ca)) of a manager on mutual-TLS Q2T."""
    pki = tmp_path / "pki"
    pki.mkdir()
    make_ca(pki, "ca")
    manager_cert, manager_key, _ = make_cert(pki, "manager", "ca")
    node_cert, node_key, _ = make_cert(pki, "node", "ca")
    factory = ManagerFactory(tmp_path / "managers")
    try:
        manager = factory.start(
            "tls",
            q2t={
                "host": "127.0.0.1",
                "port": 0,
                "tls": {
                    "cert": str(manager_cert),
                    "key": str(manager_key),
                    "ca": str(pki / "ca.pem"),
                },
            },
        )
        assert manager.q2t.startswith("https://")
        yield manager.q2t, manager.public_key, (node_cert, node_key, pki / "ca.pem")
    finally:
        factory.stop_all()


def _deploy(node: NodeProcess) -> dict[str, object]:
    accounts = rpc(node.http_url, "eth_accounts")["result"]
    data = artifact("SimpleStorage")["bytecode"] + encode(["uint256"], [42]).hex()
    return rpc(
        node.http_url,
        "eth_sendTransaction",
        [{"from": accounts[0], "data": data, "privateFor": []}],
    )


def test_a_node_reaches_a_mutual_tls_manager_with_its_certificate(
    tmp_path: Path, tls_manager: tuple[str, str, tuple[Path, Path, Path]]
) -> None:
    q2t_url, _, (cert, key, ca) = tls_manager
    node = NodeProcess(
        tmp_path / "with-cert",
        extra_args=["--tm-url", q2t_url, "--tm-tls", str(cert), str(key), str(ca)],
    ).start()
    try:
        sent = _deploy(node)
        assert "result" in sent, sent
        receipt = wait_until(
            lambda: rpc(node.http_url, "eth_getTransactionReceipt", [sent["result"]])["result"],
            30,
            "the private deploy's receipt",
        )
        assert receipt["status"] == "0x1"
        stored = rpc(
            node.http_url,
            "eth_call",
            [{"to": receipt["contractAddress"], "data": "0x6d4ce63c"}, "latest"],
        )
        assert int(stored["result"], 16) == 42
    finally:
        node.stop()


def test_without_its_certificate_the_node_cannot_send_privately(
    tmp_path: Path, tls_manager: tuple[str, str, tuple[Path, Path, Path]]
) -> None:
    q2t_url, _, _ = tls_manager
    node = NodeProcess(tmp_path / "no-cert", extra_args=["--tm-url", q2t_url]).start()
    try:
        refused = _deploy(node)
        assert refused["error"]["code"] == -32000
        assert "transaction manager unavailable" in refused["error"]["message"]
    finally:
        node.stop()
