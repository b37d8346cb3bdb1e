"""Generating a local network's files: keys, genesis, permissioned nodes, configs.

Everything a participant needs lives in ``DIR/<name>/`` (its bundle, which ``qnet init``
hands to a participant on another host), and nothing secret of anyone else's;
``DIR/layout.json`` (every development account's key) and ``DIR/ca/`` (the network CA's
key) stay outside every bundle. ``layout.json`` records what was generated (names,
hosts, ports, keys) so ``qnet start`` can bring the same network back. Development
accounts' private keys are written in clear on purpose, as ganache prints its keys:
this is a test network, never a production one.
"""

from __future__ import annotations

import json
import secrets
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from eth_keys import keys

from quorum_node.accounts import write_keystore_file
from quorum_node.chain.genesis import Genesis, GenesisAccount
from quorum_node.config import DEFAULT_VHOSTS, DEFAULT_WS_ORIGINS
from quorum_node.errors import ConfigError
from quorum_node.p2p.identity import Enode, NodeKey
from quorum_shared import pki
from quorum_shared.config_files import write_document
from quorum_shared.secret_files import secret_directory, write_secret

#: A bundle's config files, run from the bundle's folder: ``quorum-node run --config
#: node.toml`` and ``tx-manager run --config tm.toml``. Folders made before TOML have
#: the legacy names (``node_config_path``, ``tm_config_path`` find either).
NODE_CONFIG = "node.toml"
TM_CONFIG = "tm.toml"
LEGACY_NODE_CONFIG = "node.json"
LEGACY_TM_CONFIG = "tm/tm.json"
DEV_BALANCE = 10**30
DEFAULT_CHAIN_ID = 1337
#: What users of a local network call: the defaults, plus ``admin`` and ``raft`` (qnet
#: itself waits on ``raft_leader``; membership changes), ``debug``
#: (``debug_privateStateRoot``) and ``evm`` (``evm_mine``). The ports stay on loopback.
QNET_APIS = ("eth", "net", "web3", "txpool", "quorum", "admin", "raft", "debug", "evm")


def rpc_access_settings() -> dict[str, Any]:
    """The JSON-RPC access fields of a qnet node's ``node.toml``, written out in full so
    that a user sees what to change."""
    return {
        "http_api": list(QNET_APIS),
        "ws_api": list(QNET_APIS),
        "http_vhosts": list(DEFAULT_VHOSTS),
        "http_corsdomain": [],
        "ws_origins": list(DEFAULT_WS_ORIGINS),
        "allow_insecure_unlock": False,
    }


_HANDED_OUT: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free now (another process could still take it), and never
    one this process handed out before: the ports of a layout are chosen long before
    anything listens on them, and the OS may offer a released port again (seen: a
    node's and a manager's port the same, the node failing to start)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
            port = int(probe.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


@dataclass(frozen=True)
class ParticipantLayout:
    name: str
    node_id: str
    http_port: int
    ws_port: int
    p2p_port: int
    raft_port: int
    account_address: str
    account_private_key: str
    tm_q2t_port: int | None = None
    tm_p2p_port: int | None = None
    tm_public_key: str | None = None
    #: ``GET /metrics`` of the node and of its manager (None in layouts made before).
    metrics_port: int | None = None
    tm_metrics_port: int | None = None
    #: Where its p2p, Raft and manager P2P ports listen (None in layouts made before:
    #: the network's ``host``). JSON-RPC, Q2T and metrics stay on the network's host.
    host: str | None = None

    @property
    def directory_name(self) -> str:
        return self.name

    def enode(self, host: str) -> Enode:
        return Enode(self.node_id, host, self.p2p_port, self.raft_port)


@dataclass(frozen=True)
class NetworkLayout:
    chain_id: int
    consensus: str
    block_period_ms: int
    host: str
    participants: tuple[ParticipantLayout, ...]
    with_tx_managers: bool = False
    #: Mutual TLS under ``DIR/ca`` on node p2p and manager P2P (``qnet init``).
    tls: bool = False

    def host_of(self, participant: ParticipantLayout) -> str:
        return participant.host or self.host

    def tm_p2p_url(self, participant: ParticipantLayout) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host_of(participant)}:{participant.tm_p2p_port}"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["participants"] = [asdict(p) for p in self.participants]
        return data

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> NetworkLayout:
        return cls(
            chain_id=raw["chain_id"],
            consensus=raw["consensus"],
            block_period_ms=raw["block_period_ms"],
            host=raw["host"],
            participants=tuple(ParticipantLayout(**p) for p in raw["participants"]),
            with_tx_managers=raw.get("with_tx_managers", False),
            tls=raw.get("tls", False),
        )

    @classmethod
    def load(cls, directory: Path) -> NetworkLayout:
        path = directory / "layout.json"
        if (directory / "raft-password.txt").exists():
            raise ConfigError(
                f"{directory} was made by an earlier quorum-py whose Raft shared one password "
                "between all participants: recreate it (qnet down, remove the folder, qnet up)"
            )
        try:
            return cls.from_json(json.loads(path.read_text()))
        except OSError:
            raise ConfigError(
                f"{directory} holds no network (no layout.json); run qnet up"
            ) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path} is damaged: {exc}") from None

    def participant(self, name: str) -> ParticipantLayout:
        for participant in self.participants:
            if participant.name == name:
                return participant
        names = ", ".join(p.name for p in self.participants)
        raise ConfigError(f"no participant {name!r} (there are: {names})")


#: Ports of a participant on a host this machine cannot bind (``qnet init --hosts`` for
#: other machines): the usual ones (GoQuorum's p2p and Raft, geth's JSON-RPC, Tessera's
#: P2P), plus ``REMOTE_PORT_STEP`` for each earlier participant on the same host (so
#: that 8545 and 8546 of two participants do not meet; up to ten on one host).
REMOTE_PORTS = {
    "http_port": 8545,
    "ws_port": 8546,
    "p2p_port": 21000,
    "raft_port": 50400,
    "metrics_port": 9545,
    "tm_p2p_port": 9001,
    "tm_q2t_port": 9101,
    "tm_metrics_port": 9102,
}
REMOTE_PORT_STEP = 10
#: The ports that listen on the participant's host; the others stay on loopback.
HOST_PORTS = ("p2p_port", "raft_port", "tm_p2p_port")


def _can_bind(host: str) -> bool:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
    except OSError:
        return False
    return True


def _choose_ports(
    hosts: list[str], loopback: str, with_tx_managers: bool
) -> list[dict[str, int | None]]:
    """Free ports for participants on this machine; the usual ports, shifted per
    participant sharing a host, for the others."""
    chosen: list[dict[str, int | None]] = []
    seen_on_host: dict[str, int] = {}
    for host in hosts:
        names = [n for n in REMOTE_PORTS if with_tx_managers or not n.startswith("tm_")]
        ports: dict[str, int | None] = {n: None for n in REMOTE_PORTS}
        if _can_bind(host):
            for name in names:
                ports[name] = free_port(host if name in HOST_PORTS else loopback)
        else:
            offset = seen_on_host.get(host, 0)
            seen_on_host[host] = offset + 1
            for name in names:
                ports[name] = REMOTE_PORTS[name] + offset * REMOTE_PORT_STEP
        chosen.append(ports)
    return chosen


def _write_network_ca(directory: Path) -> pki.PemPair:
    """``DIR/ca/``: the CA certificate and its private key, outside every bundle."""
    ca = pki.make_ca(f"quorum-py network {secrets.token_hex(4)}")
    ca_dir = secret_directory(directory / "ca")
    write_secret(ca_dir / "ca.key", ca.private_key)
    (ca_dir / "ca.pem").write_bytes(ca.certificate)
    return ca


def generate(
    directory: Path,
    nodes: int,
    consensus: str,
    block_period_ms: int,
    host: str = "127.0.0.1",
    names: list[str] | None = None,
    chain_id: int = DEFAULT_CHAIN_ID,
    with_tx_managers: bool = True,
    hosts: list[str] | None = None,
    tls: bool = False,
) -> NetworkLayout:
    """Write a new network under ``directory`` and return its layout.

    Each participant gets a bundle, ``directory/<name>/``, with everything it needs to
    run on its host and no secret that any other participant holds: node and manager
    configs, its node key (which also authenticates its Raft links), keystore and a
    password of its own, manager key pair, and the public genesis and
    permissioned-nodes list. With ``tls`` also its certificate and
    key and the network CA's certificate; the CA's key stays in ``directory/ca/``.
    ``hosts`` (one per participant, default ``host``) is where its p2p, Raft and
    manager P2P ports listen and are dialled; JSON-RPC and Q2T stay on ``host``.
    """
    if nodes < 1:
        raise ConfigError("--nodes must be at least 1")
    if consensus == "solo" and nodes != 1:
        raise ConfigError("solo orders blocks on one node; use --consensus raft for several nodes")
    names = names or [f"node{index + 1}" for index in range(nodes)]
    if len(names) != nodes or len(set(names)) != nodes:
        raise ConfigError("need one distinct name per node")
    hosts = hosts or [host] * nodes
    if len(hosts) != nodes:
        raise ConfigError(f"need one host per participant ({nodes}), got {len(hosts)}")
    secret_directory(directory)  # layout.json holds every development account's key
    participants = []
    for name, participant_host, ports in zip(
        names, hosts, _choose_ports(hosts, host, with_tx_managers), strict=True
    ):
        node_dir = secret_directory(directory / name)
        datadir = secret_directory(node_dir / "data")
        node_key = NodeKey.load_or_create(datadir / "nodekey")
        account_key = secrets.token_bytes(32)
        account_password = secrets.token_urlsafe(24)
        write_keystore_file(datadir / "keystore", account_key, account_password)
        write_secret(node_dir / "password.txt", account_password + "\n")
        address = keys.PrivateKey(account_key).public_key.to_checksum_address()
        public_key = _write_manager_keys(node_dir / "tm", name) if with_tx_managers else None
        participants.append(
            ParticipantLayout(
                name=name,
                node_id=node_key.node_id,
                account_address=address,
                account_private_key="0x" + account_key.hex(),
                tm_public_key=public_key,
                host=participant_host,
                **ports,  # type: ignore[arg-type]
            )
        )
    layout = NetworkLayout(
        chain_id,
        consensus,
        block_period_ms,
        host,
        tuple(participants),
        with_tx_managers=with_tx_managers,
        tls=tls,
    )
    genesis = Genesis(
        chain_id=chain_id,
        alloc={
            bytes.fromhex(p.account_address[2:]): GenesisAccount(balance=DEV_BALANCE)  # type: ignore[misc]
            for p in participants
        },
    )
    genesis.save(directory / "genesis.json")
    permissioned = json.dumps([str(p.enode(layout.host_of(p))) for p in participants], indent=2)
    ca = _write_network_ca(directory) if tls else None
    for participant in participants:
        node_dir = directory / participant.name
        (node_dir / "genesis.json").write_bytes((directory / "genesis.json").read_bytes())
        (node_dir / "data" / "permissioned-nodes.json").write_text(permissioned + "\n")
        if ca is not None:
            _write_certificate(node_dir / "tls", participant, layout.host_of(participant), ca)
        _write_node_config(node_dir, layout, participant)
        if with_tx_managers:
            _write_manager_config(node_dir, layout, participant)
    save_layout(directory, layout)
    return layout


def _write_manager_keys(tm_dir: Path, name: str) -> str:
    """An unlocked key pair (a test network's): returns the public key, base64."""
    from tx_manager.keyfile import read_public_key, write_keypair
    from tx_manager.payload import b64encode

    public_path = tm_dir / f"{name}.pub"
    if not public_path.exists():
        write_keypair(secret_directory(tm_dir), name, None)
    return b64encode(read_public_key(public_path))


def _write_certificate(
    tls_dir: Path, participant: ParticipantLayout, host: str, ca: pki.PemPair
) -> None:
    """``tls/<name>.pem`` and ``.key`` (for ``host``, server and client) and ``tls/ca.pem``."""
    secret_directory(tls_dir)
    made = pki.issue_certificate(ca, participant.name, [host])
    write_secret(tls_dir / f"{participant.name}.key", made.private_key)
    (tls_dir / f"{participant.name}.pem").write_bytes(made.certificate)
    (tls_dir / "ca.pem").write_bytes(ca.certificate)


def _tls_files(name: str) -> dict[str, str]:
    return {"cert": f"tls/{name}.pem", "key": f"tls/{name}.key", "ca": "tls/ca.pem"}


def _write_node_config(
    node_dir: Path, layout: NetworkLayout, participant: ParticipantLayout
) -> None:
    config: dict[str, Any] = {
        "datadir": "data",
        "genesis": "genesis.json",
        "consensus": layout.consensus,
        "block_period_ms": layout.block_period_ms,
        "rpc_host": layout.host,
        "http_port": participant.http_port,
        "ws_port": participant.ws_port,
        "password_file": "password.txt",
        "p2p_host": layout.host_of(participant),
        "p2p_port": participant.p2p_port,
        "raft_port": participant.raft_port,
        "permissioned_nodes": "data/permissioned-nodes.json",
        "metrics_host": layout.host,
        "metrics_port": participant.metrics_port,
        **rpc_access_settings(),
    }
    if layout.tls:
        config["p2p_tls"] = _tls_files(participant.name)
    if participant.tm_q2t_port is not None:
        config["tm_url"] = f"http://{layout.host}:{participant.tm_q2t_port}"
    write_document(node_dir / NODE_CONFIG, config)


def _write_manager_config(
    node_dir: Path, layout: NetworkLayout, participant: ParticipantLayout
) -> None:
    """``tm.toml`` beside ``node.toml``, its store and keys in ``tm/``. Every other
    manager is a peer, at its host's P2P URL (https under ``tls``)."""
    host = layout.host_of(participant)
    config: dict[str, Any] = {
        "data_dir": "tm",
        "keys": [{"public": f"tm/{participant.name}.pub", "private": f"tm/{participant.name}.key"}],
        "peers": [
            layout.tm_p2p_url(other) for other in layout.participants if other is not participant
        ],
        "q2t": {"host": layout.host, "port": participant.tm_q2t_port},
        "p2p": {"host": host, "port": participant.tm_p2p_port},
        "advertised_url": layout.tm_p2p_url(participant),
        "discovery_interval": 1.0,
        "metrics": {"host": layout.host, "port": participant.tm_metrics_port},
    }
    if layout.tls:
        config["tls"] = {"mode": "ca", **_tls_files(participant.name)}
    write_document(node_dir / TM_CONFIG, config)


def node_config_path(bundle: Path) -> Path:
    """A bundle's node config: ``node.toml``, or the ``node.json`` of a folder that an
    earlier ``qnet`` wrote."""
    legacy = bundle / LEGACY_NODE_CONFIG
    return (
        legacy if legacy.exists() and not (bundle / NODE_CONFIG).exists() else bundle / NODE_CONFIG
    )


def tm_config_path(bundle: Path) -> Path:
    """A bundle's manager config: ``tm.toml``, or an earlier ``qnet``'s ``tm/tm.json``."""
    legacy = bundle / LEGACY_TM_CONFIG
    return legacy if legacy.exists() and not (bundle / TM_CONFIG).exists() else bundle / TM_CONFIG


def save_layout(directory: Path, layout: NetworkLayout) -> None:
    """``layout.json`` holds the development accounts' private keys: written as a secret."""
    write_secret(directory / "layout.json", json.dumps(layout.to_json(), indent=2) + "\n")


def network_description(layout: NetworkLayout) -> dict[str, Any]:
    """``network.json``: what a client needs to use the network."""
    nodes = []
    for p in layout.participants:
        entry: dict[str, Any] = {
            "name": p.name,
            "rpc_url": f"http://{layout.host}:{p.http_port}",
            "ws_url": f"ws://{layout.host}:{p.ws_port}",
            "enode": str(p.enode(layout.host_of(p))),
            "accounts": [{"address": p.account_address, "private_key": p.account_private_key}],
        }
        if p.tm_q2t_port is not None:
            entry["tm_url"] = f"http://{layout.host}:{p.tm_q2t_port}"
            entry["tm_p2p_url"] = layout.tm_p2p_url(p)
            entry["tm_public_key"] = p.tm_public_key
        if p.metrics_port is not None:
            entry["metrics_url"] = f"http://{layout.host}:{p.metrics_port}/metrics"
        if p.tm_metrics_port is not None:
            entry["tm_metrics_url"] = f"http://{layout.host}:{p.tm_metrics_port}/metrics"
        nodes.append(entry)
    return {"chain_id": layout.chain_id, "consensus": layout.consensus, "nodes": nodes}
