"""Settings of one node, from the command line or a config file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

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

    @property
    def keystore_dir(self) -> Path:
        return self.datadir / "keystore"

    @property
    def chain_db_path(self) -> Path:
        return self.datadir / "chain.sqlite"
