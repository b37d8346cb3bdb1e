"""``qnet init`` bundles, one per participant on its own address (127.0.0.2-4, all
loopback on Linux), each started with the two commands of the README from its own
folder (``tx-manager run --config tm.toml``, ``quorum-node run --config node.toml``):
no bundle holds another participant's secrets or the CA's key, the configs name the
right hosts, a private transaction goes between two of them, and every link between
hosts refuses a certificate the network CA did not issue, or none.
"""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from eth_abi import encode

from quorum_node.p2p.identity import NodeKey
from quorum_shared import pki
from quorum_shared.config_files import read_document
from tests.privacy.conftest import artifact
from tests.support.node_process import rpc, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HOSTS = {"A": "127.0.0.2", "B": "127.0.0.3", "C": "127.0.0.4"}


@dataclass
class Bundles:
    directory: Path
    processes: list[subprocess.Popen[bytes]]

    def config(self, name: str) -> dict[str, Any]:
        return read_document(self.directory / name / "node.toml")

    def tm_config(self, name: str) -> dict[str, Any]:
        return read_document(self.directory / name / "tm.toml")

    def rpc_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.config(name)['http_port']}"

    def public_key(self, name: str) -> str:
        return (self.directory / name / "tm" / f"{name}.pub").read_text().strip()

    def log_tail(self) -> str:
        return "\n".join(
            f"--- {path}:\n{path.read_text()[-1500:]}"
            for path in sorted(self.directory.glob("*/*.log"))
        )


def _init(directory: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "quorum_node.qnet.cli",
            "init",
            "--dir",
            str(directory),
            "--names",
            ",".join(HOSTS),
            "--hosts",
            ",".join(HOSTS.values()),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


def _run(bundle: Path, command: list[str], log_name: str) -> subprocess.Popen[bytes]:
    """``quorum-node``/``tx-manager`` as their console scripts run them, from the bundle."""
    with open(bundle / log_name, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", *command],
            cwd=bundle,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bundles]:
    directory = tmp_path_factory.mktemp("bundles") / "net"
    _init(directory)
    running = Bundles(directory, [])
    try:
        for name in HOSTS:
            running.processes.append(
                _run(
                    directory / name,
                    ["tx_manager.cli", "run", "--config", "tm.toml"],
                    "tm.log",
                )
            )
        for name in HOSTS:
            q2t = running.tm_config(name)["q2t"]["port"]
            wait_until(
                lambda q2t=q2t: _answers(f"http://127.0.0.1:{q2t}/upcheck"),
                60,
                f"{name}'s manager\n{running.log_tail()}",
            )
        for name in HOSTS:
            running.processes.append(
                _run(
                    directory / name,
                    ["quorum_node.cli", "run", "--config", "node.toml"],
                    "node.log",
                )
            )
        for name in HOSTS:
            url = running.rpc_url(name)
            wait_until(
                lambda url=url: (
                    "result" in _try_rpc(url, "raft_leader")
                    and _try_rpc(url, "raft_leader")["result"]
                ),
                90,
                f"{name}'s node to know a leader\n{running.log_tail()}",
            )
        yield running
    finally:
        for process in running.processes:
            process.terminate()
        for process in running.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _try_rpc(url: str, method: str) -> dict[str, Any]:
    try:
        return rpc(url, method)
    except OSError:
        return {}


# --- what each bundle holds ----------------------------------------------------------


def _own_secrets(directory: Path, name: str) -> list[bytes]:
    """Participant ``name``'s private keys, as they could appear in a file."""
    layout = json.loads((directory / "layout.json").read_text())
    (account,) = [p for p in layout["participants"] if p["name"] == name]
    bundle = directory / name
    manager_key = json.loads((bundle / "tm" / f"{name}.key").read_text())["data"]["bytes"]
    tls_key_body = (bundle / "tls" / f"{name}.key").read_text().splitlines()[1:-1]
    return [
        account["account_private_key"].removeprefix("0x").encode(),
        (bundle / "data" / "nodekey").read_bytes().strip(),
        manager_key.encode(),
        base64.b64decode(manager_key).hex().encode(),
        "".join(tls_key_body).encode(),
        *(line.encode() for line in tls_key_body),
    ]


def _ca_secret(directory: Path) -> list[bytes]:
    body = (directory / "ca" / "ca.key").read_text().splitlines()[1:-1]
    return ["".join(body).encode(), *(line.encode() for line in body)]


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()]


def test_no_bundle_holds_another_participants_secrets_or_the_ca_key(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "net"
    _init(directory)
    for name in HOSTS:
        forbidden = {other: _own_secrets(directory, other) for other in HOSTS if other != name}
        forbidden["the CA"] = _ca_secret(directory)
        for path in _files(directory / name):
            content = path.read_bytes()
            for owner, secrets in forbidden.items():
                leaked = [s for s in secrets if s and s in content]
                assert not leaked, f"{path} holds {owner}'s private key"
        # and its own are there, so that the scan above can find keys at all
        own = b"".join(p.read_bytes() for p in _files(directory / name))
        assert all(secret in own for secret in _own_secrets(directory, name)[1:3])
    assert not any(p.suffix == ".key" and p.parent.name == "ca" for p in _files(directory / "A"))


def test_the_configs_name_each_participants_host(tmp_path: Path) -> None:
    directory = tmp_path / "net"
    _init(directory)
    for name, host in HOSTS.items():
        bundle = directory / name
        assert not (bundle / "node.json").exists() and not (bundle / "tm" / "tm.json").exists()
        node = read_document(bundle / "node.toml")
        manager = read_document(bundle / "tm.toml")
        assert node["p2p_host"] == host
        assert node["rpc_host"] == "127.0.0.1" and node["tm_url"].startswith("http://127.0.0.1:")
        assert node["p2p_tls"] == {
            "cert": f"tls/{name}.pem",
            "key": f"tls/{name}.key",
            "ca": "tls/ca.pem",
        }
        assert manager["p2p"]["host"] == host and manager["q2t"]["host"] == "127.0.0.1"
        assert manager["advertised_url"] == f"https://{host}:{manager['p2p']['port']}"
        assert manager["tls"] == {"mode": "ca", **node["p2p_tls"]}
        assert manager["data_dir"] == "tm" and manager["keys"] == [
            {"public": f"tm/{name}.pub", "private": f"tm/{name}.key"}
        ]
        others = {h for n, h in HOSTS.items() if n != name}
        assert {peer.split("//")[1].split(":")[0] for peer in manager["peers"]} == others
        enodes = json.loads((bundle / "data" / "permissioned-nodes.json").read_text())
        assert sorted(e.split("@")[1].split(":")[0] for e in enodes) == sorted(HOSTS.values())
        certificate = x509.load_pem_x509_certificate((bundle / "tls" / f"{name}.pem").read_bytes())
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        assert [str(ip) for ip in names.value.get_values_for_type(x509.IPAddress)] == [host]
        assert (bundle / "tls" / "ca.pem").read_bytes() == (
            directory / "ca" / "ca.pem"
        ).read_bytes()


# --- the running network -------------------------------------------------------------


def test_a_private_transaction_between_two_hosts(bundles: Bundles) -> None:
    sender, recipient, outsider = "A", "B", "C"
    account = rpc(bundles.rpc_url(sender), "eth_accounts")["result"][0]
    data = artifact("SimpleStorage")["bytecode"] + encode(["uint256"], [42]).hex()
    sent = rpc(
        bundles.rpc_url(sender),
        "eth_sendTransaction",
        [{"from": account, "data": data, "privateFor": [bundles.public_key(recipient)]}],
    )
    assert "result" in sent, sent
    receipts = {}
    for name in HOSTS:
        receipts[name] = wait_until(
            lambda name=name: rpc(
                bundles.rpc_url(name), "eth_getTransactionReceipt", [sent["result"]]
            )["result"],
            60,
            f"the private deploy's receipt on {name}",
        )
    contract = receipts[sender]["contractAddress"]
    get = [{"to": contract, "data": "0x6d4ce63c"}, "latest"]
    for name in (sender, recipient):
        stored = rpc(bundles.rpc_url(name), "eth_call", get)["result"]
        assert int(stored, 16) == 42, (name, stored)
    assert rpc(bundles.rpc_url(outsider), "eth_call", get)["result"] in ("0x", "0x" + "0" * 64)


@pytest.fixture(scope="module")
def rogue(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A certificate for A's own address and name, from a CA the network never heard of."""
    folder = tmp_path_factory.mktemp("rogue")
    authority = pki.make_ca("rogue CA")
    made = pki.issue_certificate(authority, "A", [HOSTS["A"]])
    (folder / "A.pem").write_bytes(made.certificate)
    (folder / "A.key").write_bytes(made.private_key)
    return folder / "A.pem", folder / "A.key"


def _client(bundles: Bundles, cert: tuple[Path, Path] | None) -> ssl.SSLContext:
    """Trusts the network CA (so the server is verified); presents ``cert`` if given."""
    context = ssl.create_default_context(cafile=str(bundles.directory / "ca" / "ca.pem"))
    if cert is not None:
        context.load_cert_chain(*cert)
    return context


def _get(url: str, context: ssl.SSLContext, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        with error:
            return int(error.code)


def _a_certificate(bundles: Bundles) -> tuple[Path, Path]:
    tls = bundles.directory / "A" / "tls"
    return tls / "A.pem", tls / "A.key"


@pytest.mark.parametrize("presented", ["another CA's", "none"])
def test_a_manager_refuses_a_peer_without_a_network_certificate(
    bundles: Bundles, rogue: tuple[Path, Path], presented: str
) -> None:
    url = bundles.tm_config("B")["advertised_url"] + "/upcheck"
    assert _get(url, _client(bundles, _a_certificate(bundles))) == 200
    with pytest.raises(OSError):
        _get(url, _client(bundles, rogue if presented == "another CA's" else None))


@pytest.mark.parametrize("presented", ["another CA's", "none"])
def test_a_node_refuses_a_peer_without_a_network_certificate(
    bundles: Bundles, rogue: tuple[Path, Path], presented: str
) -> None:
    """Even a request that A's own node key signed: TLS refuses before the signature."""
    config = bundles.config("B")
    url = f"https://{HOSTS['B']}:{config['p2p_port']}/p2p/status"
    signer = NodeKey.load_or_create(bundles.directory / "A" / "data" / "nodekey")

    def signed() -> dict[str, str]:
        return signer.sign_request("GET", "/p2p/status", b"")

    assert _get(url, _client(bundles, _a_certificate(bundles)), signed()) == 200
    with pytest.raises(OSError):
        _get(url, _client(bundles, rogue if presented == "another CA's" else None), signed())
    # plain HTTP gets nowhere either
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://{HOSTS['B']}:{config['p2p_port']}/p2p/status", timeout=5)


def test_participants_sharing_a_host_this_machine_cannot_bind_get_distinct_ports(
    tmp_path: Path,
) -> None:
    """192.0.2.0/24 is for documentation: no interface here has it."""
    directory = tmp_path / "net"
    subprocess.run(
        [sys.executable, "-m", "quorum_node.qnet.cli", "init", "--dir", str(directory)]
        + ["--names", "A,B", "--hosts", "192.0.2.1,192.0.2.1"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    used: list[int] = []
    for name in ("A", "B"):
        node = read_document(directory / name / "node.toml")
        manager = read_document(directory / name / "tm.toml")
        used += [node[k] for k in ("http_port", "ws_port", "p2p_port", "raft_port")]
        used += [node["metrics_port"], *(manager[k]["port"] for k in ("p2p", "q2t", "metrics"))]
    assert len(used) == len(set(used)) == 16
