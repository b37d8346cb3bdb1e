"""Settings of one node, from the command line or a config file."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quorum_node.errors import ConfigError

DEFAULT_MAX_BODY_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True)
class RpcConfig:
    host: str = "127.0.0.1"
    http_port: int = 8545
    ws_port: int | None = 8546
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_batch_size: int = 10_000


@dataclass(frozen=True)
class NodeConfig:
    datadir: Path
    genesis_file: Path
    rpc: RpcConfig = field(default_factory=RpcConfig)
    consensus: str = "solo"
    block_period_ms: int = 50
    coinbase: bytes = b"\x00" * 20
    password_file: Path | None = None
    extra_keys: tuple[bytes, ...] = ()
    client_version: str = "quorum-py/v0.1.0/python"
    p2p_host: str = "127.0.0.1"
    p2p_port: int | None = None  # None: no node-to-node endpoint (a lone dev node)
    raft_port: int | None = None
    raft_password_file: Path | None = None
    permissioned_nodes_file: Path | None = None
    tm_url: str | None = None  # the transaction manager's Q2T URL; None: no private transactions
    #: A follower that hears nothing from the leader for this long (up to 3 times as
    #: long, at random) stands for election. Raise it on a loaded or distant network.
    raft_election_timeout_ms: int = 400

    @property
    def node_key_path(self) -> Path:
        return self.datadir / "nodekey"

    @property
    def raft_dir(self) -> Path:
        return self.datadir / "raft"

    @property
    def keystore_dir(self) -> Path:
        return self.datadir / "keystore"

    @property
    def chain_db_path(self) -> Path:
        return self.datadir / "chain.sqlite"


def load_node_config(path: Path) -> NodeConfig:
    """Read a node config file (JSON, as ``qnet`` writes it); relative paths are taken
    from the file's folder."""
    try:
        raw: Any = json.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"config {path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config {path}: expected a JSON object")
    base = path.resolve().parent

    def a_path(key: str, required: bool = False) -> Path | None:
        value = raw.get(key)
        if value is None:
            if required:
                raise ConfigError(f"config {path}: {key!r} is required")
            return None
        if not isinstance(value, str):
            raise ConfigError(f"config {path}: {key!r} must be a path")
        return base / value

    def a_port(key: str, default: int | None) -> int | None:
        value = raw.get(key, default)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 65535:
            raise ConfigError(f"config {path}: {key!r} must be a port number")
        return value

    def a_duration_ms(key: str, default: int) -> int:
        value = raw.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or not 50 <= value <= 60_000:
            raise ConfigError(f"config {path}: {key!r} must be milliseconds, 50 to 60000")
        return value

    rpc = RpcConfig(
        host=str(raw.get("rpc_host", "127.0.0.1")),
        http_port=a_port("http_port", 8545) or 0,
        ws_port=a_port("ws_port", None),
        max_body_bytes=int(raw.get("max_body_bytes", DEFAULT_MAX_BODY_BYTES)),
    )
    datadir = a_path("datadir", required=True)
    genesis = a_path("genesis", required=True)
    assert datadir is not None and genesis is not None  # noqa: S101 - required above
    consensus = raw.get("consensus", "solo")
    if consensus not in ("solo", "raft"):
        raise ConfigError(f"config {path}: consensus must be solo or raft")
    return NodeConfig(
        datadir=datadir,
        genesis_file=genesis,
        rpc=rpc,
        consensus=consensus,
        block_period_ms=int(raw.get("block_period_ms", 50)),
        password_file=a_path("password_file"),
        p2p_host=str(raw.get("p2p_host", "127.0.0.1")),
        p2p_port=a_port("p2p_port", None),
        raft_port=a_port("raft_port", None),
        raft_password_file=a_path("raft_password_file"),
        permissioned_nodes_file=a_path("permissioned_nodes"),
        tm_url=raw.get("tm_url"),
        raft_election_timeout_ms=a_duration_ms("raft_election_timeout_ms", 400),
    )
