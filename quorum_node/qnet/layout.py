"""Generating a local network's files: keys, genesis, permissioned nodes, configs.

Everything a participant needs lives in ``DIR/<name>/``; ``DIR/layout.json`` records
what was generated (names, ports, keys) so ``qnet start`` can bring the same network
back. Development accounts' private keys are written in clear on purpose, as ganache
prints its keys: this is a local test network, never a production one.
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
from quorum_shared.secret_files import secret_directory, write_secret

DEV_BALANCE = 10**30
DEFAULT_CHAIN_ID = 1337
ACCOUNT_PASSWORD = "quorum-py-dev"
#: What users of a local network call: the defaults, plus ``admin`` and ``raft`` (qnet
#: itself waits on ``raft_leader``; membership changes), ``debug``
#: (``debug_privateStateRoot``) and ``evm`` (``evm_mine``). The ports stay on loopback.
QNET_APIS = ("eth", "net", "web3", "txpool", "quorum", "admin", "raft", "debug", "evm")


def rpc_access_settings() -> dict[str, Any]:
    """The JSON-RPC access fields of a qnet node's ``node.json``, written out in full so
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
        )

    @classmethod
    def load(cls, directory: Path) -> NetworkLayout:
        path = directory / "layout.json"
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


def generate(
    directory: Path,
    nodes: int,
    consensus: str,
    block_period_ms: int,
    host: str = "127.0.0.1",
    names: list[str] | None = None,
    chain_id: int = DEFAULT_CHAIN_ID,
    with_tx_managers: bool = True,
) -> NetworkLayout:
    """Write every file of a new network under ``directory`` and return its layout."""
    if nodes < 1:
        raise ConfigError("--nodes must be at least 1")
    if consensus == "solo" and nodes != 1:
        raise ConfigError("solo orders blocks on one node; use --consensus raft for several nodes")
    names = names or [f"node{index + 1}" for index in range(nodes)]
    if len(names) != nodes or len(set(names)) != nodes:
        raise ConfigError("need one distinct name per node")
    secret_directory(directory)  # raft-password.txt and layout.json hold secrets
    participants = []
    for name in names:
        node_dir = secret_directory(directory / name)
        datadir = secret_directory(node_dir / "data")
        node_key = NodeKey.load_or_create(datadir / "nodekey")
        account_key = secrets.token_bytes(32)
        write_keystore_file(datadir / "keystore", account_key, ACCOUNT_PASSWORD)
        write_secret(node_dir / "password.txt", ACCOUNT_PASSWORD + "\n")
        address = keys.PrivateKey(account_key).public_key.to_checksum_address()
        participants.append(
            ParticipantLayout(
                name=name,
                node_id=node_key.node_id,
                http_port=free_port(host),
                ws_port=free_port(host),
                p2p_port=free_port(host),
                raft_port=free_port(host),
                metrics_port=free_port(host),
                account_address=address,
                account_private_key="0x" + account_key.hex(),
            )
        )
    layout = NetworkLayout(chain_id, consensus, block_period_ms, host, tuple(participants))
    genesis = Genesis(
        chain_id=chain_id,
        alloc={
            bytes.fromhex(p.account_address[2:]): GenesisAccount(balance=DEV_BALANCE)  # type: ignore[misc]
            for p in participants
        },
    )
    genesis.save(directory / "genesis.json")
    permissioned = [str(p.enode(host)) for p in participants]
    write_secret(directory / "raft-password.txt", secrets.token_hex(32) + "\n")
    for participant in participants:
        node_dir = directory / participant.name
        (node_dir / "data" / "permissioned-nodes.json").write_text(
            json.dumps(permissioned, indent=2) + "\n"
        )
        config = {
            "datadir": "data",
            "genesis": "../genesis.json",
            "consensus": consensus,
            "block_period_ms": block_period_ms,
            "rpc_host": host,
            "http_port": participant.http_port,
            "ws_port": participant.ws_port,
            "password_file": "password.txt",
            "p2p_host": host,
            "p2p_port": participant.p2p_port,
            "raft_port": participant.raft_port,
            "raft_password_file": "../raft-password.txt",
            "permissioned_nodes": "data/permissioned-nodes.json",
            "metrics_host": host,
            "metrics_port": participant.metrics_port,
            **rpc_access_settings(),
        }
        (node_dir / "node.json").write_text(json.dumps(config, indent=2) + "\n")
    if with_tx_managers:
        layout = add_transaction_managers(directory, layout)
    save_layout(directory, layout)
    return layout


def add_transaction_managers(directory: Path, layout: NetworkLayout) -> NetworkLayout:
    """Give every participant a transaction manager: an unlocked key pair (a local test
    network), fixed ports, and a config listing every other manager as a peer."""
    from dataclasses import replace

    from tx_manager.keyfile import read_public_key, write_keypair
    from tx_manager.payload import b64encode

    host = layout.host
    with_ports = [
        replace(
            p,
            tm_q2t_port=free_port(host),
            tm_p2p_port=free_port(host),
            tm_metrics_port=free_port(host),
        )
        for p in layout.participants
    ]
    participants = []
    for participant in with_ports:
        tm_dir = directory / participant.name / "tm"
        public_path = tm_dir / f"{participant.name}.pub"
        if not public_path.exists():
            write_keypair(tm_dir, participant.name, None)
        public_key = b64encode(read_public_key(public_path))
        peers = [
            f"http://{host}:{other.tm_p2p_port}" for other in with_ports if other is not participant
        ]
        config = {
            "data_dir": ".",
            "keys": [{"public": f"{participant.name}.pub", "private": f"{participant.name}.key"}],
            "peers": peers,
            "q2t": {"host": host, "port": participant.tm_q2t_port},
            "p2p": {"host": host, "port": participant.tm_p2p_port},
            "advertised_url": f"http://{host}:{participant.tm_p2p_port}",
            "discovery_interval": 1.0,
            "metrics": {"host": host, "port": participant.tm_metrics_port},
        }
        (tm_dir / "tm.json").write_text(json.dumps(config, indent=2) + "\n")
        participants.append(replace(participant, tm_public_key=public_key))
        node_config_path = directory / participant.name / "node.json"
        node_config = json.loads(node_config_path.read_text())
        node_config["tm_url"] = f"http://{host}:{participant.tm_q2t_port}"
        node_config_path.write_text(json.dumps(node_config, indent=2) + "\n")
    return replace(layout, participants=tuple(participants), with_tx_managers=True)


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
            "enode": str(p.enode(layout.host)),
            "accounts": [{"address": p.account_address, "private_key": p.account_private_key}],
        }
        if p.tm_q2t_port is not None:
            entry["tm_url"] = f"http://{layout.host}:{p.tm_q2t_port}"
            entry["tm_p2p_url"] = f"http://{layout.host}:{p.tm_p2p_port}"
            entry["tm_public_key"] = p.tm_public_key
        if p.metrics_port is not None:
            entry["metrics_url"] = f"http://{layout.host}:{p.metrics_port}/metrics"
        if p.tm_metrics_port is not None:
            entry["tm_metrics_url"] = f"http://{layout.host}:{p.tm_metrics_port}/metrics"
        nodes.append(entry)
    return {"chain_id": layout.chain_id, "consensus": layout.consensus, "nodes": nodes}
