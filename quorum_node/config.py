"""Settings of one node, from the command line or a config file."""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quorum_node.errors import ConfigError
from quorum_shared.addresses import is_loopback_host
from quorum_shared.config_files import ConfigFileError, read_document
from quorum_shared.version import VERSION

# geth's limits (--rpc.batch-request-limit, --rpc.batch-response-max-size).
DEFAULT_MAX_BODY_BYTES = 5 * 1024 * 1024
DEFAULT_MAX_BATCH_SIZE = 1_000
DEFAULT_MAX_BATCH_RESPONSE_BYTES = 25 * 1024 * 1024
# What one WebSocket connection may have waiting to be sent before it counts as a reader
# that cannot keep up and is disconnected: a few hundred blocks' worth of notifications.
DEFAULT_WS_MAX_QUEUED_BYTES = 16 * 1024 * 1024
DEFAULT_COMMITMENT_INTERVAL = 10
#: In the Raft folder, the mark of the format its log and snapshots are written in
#: (``consensus.raft_state.check_raft_folder``); ``--wipe`` deletes it with them.
RAFT_FORMAT_FILE = "FORMAT"

#: Every namespace a method can belong to (the text before a method's first ``_``).
KNOWN_APIS = frozenset(
    {"admin", "debug", "eth", "evm", "net", "personal", "quorum", "raft", "txpool", "web3"}
)
#: Enabled unless listed otherwise: reading the chain, sending (public and private)
#: transactions. ``admin``, ``raft``, ``debug`` and ``personal`` are opt-in, as in geth.
DEFAULT_APIS = frozenset({"eth", "net", "web3", "txpool", "quorum"})
#: ``quorum-node dev`` adds ``evm`` (``evm_mine``), as development chains do.
DEV_APIS = DEFAULT_APIS | {"evm"}
#: Host headers served by default (an IP-literal Host is always served).
DEFAULT_VHOSTS = ("localhost",)
#: Browser origins allowed to open a WebSocket by default; a rule without a port
#: matches every port. A handshake without an Origin header (a program) is allowed.
DEFAULT_WS_ORIGINS = ("http://localhost", "http://127.0.0.1", "http://[::1]")


@dataclass(frozen=True)
class RpcConfig:
    """The JSON-RPC edge: where it listens, who may use it (as geth's ``--http.*`` and
    ``--ws.*`` flags decide), which namespaces it serves, and its limits."""

    host: str = "127.0.0.1"
    http_port: int = 8545
    ws_port: int | None = 8546
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    max_batch_response_bytes: int = DEFAULT_MAX_BATCH_RESPONSE_BYTES
    http_vhosts: tuple[str, ...] = DEFAULT_VHOSTS
    http_corsdomain: tuple[str, ...] = ()
    ws_origins: tuple[str, ...] = DEFAULT_WS_ORIGINS
    http_api: frozenset[str] = DEFAULT_APIS
    ws_api: frozenset[str] = DEFAULT_APIS
    allow_insecure_unlock: bool = False
    ws_max_queued_bytes: int = DEFAULT_WS_MAX_QUEUED_BYTES

    @property
    def listens_beyond_loopback(self) -> bool:
        return not is_loopback_host(self.host)


def parse_apis(names: Iterable[str], what: str) -> frozenset[str]:
    """A set of namespace names, every one known (a typo would silently disable one)."""
    apis = frozenset(name.strip().lower() for name in names if name.strip())
    unknown = sorted(apis - KNOWN_APIS)
    if unknown:
        raise ConfigError(
            f"{what}: unknown API namespace {', '.join(unknown)} "
            f"(known: {', '.join(sorted(KNOWN_APIS))})"
        )
    return apis


def check_insecure_unlock(rpc: RpcConfig, held_accounts: int) -> None:
    """Refuse to hold unlocked accounts on a JSON-RPC port reachable from other hosts:
    whoever reaches it could send transactions from them (geth's rule)."""
    if held_accounts and rpc.listens_beyond_loopback and not rpc.allow_insecure_unlock:
        raise ConfigError(
            f"refusing to unlock {held_accounts} account(s) while JSON-RPC listens on "
            f"{rpc.host}, beyond loopback: anyone who reaches the port could spend them; "
            "listen on 127.0.0.1, or accept the risk with --allow-insecure-unlock "
            "(node.toml: allow_insecure_unlock = true)"
        )


@dataclass(frozen=True)
class ManagerTls:
    cert: Path
    key: Path
    ca: Path

    def client_context(self) -> ssl.SSLContext:
        """The TLS client side of the node's Q2T connection: the manager's certificate
        must chain to ``ca``, and the node presents ``cert``."""
        try:
            context = ssl.create_default_context(cafile=str(self.ca))
            context.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"cannot load the manager TLS files ({self.cert}, {self.key}, {self.ca}): {exc}"
            ) from None
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context


@dataclass(frozen=True)
class PeerTls:
    """Mutual TLS on the node-to-node channel (``[p2p_tls]`` in node.toml): this node
    presents ``cert`` as server and as client, and accepts only peers whose certificate
    chains to ``ca`` (the network CA). Request signatures are checked as without TLS."""

    cert: Path
    key: Path
    ca: Path

    def _context(self, purpose: int) -> ssl.SSLContext:
        context = ssl.SSLContext(purpose)
        try:
            context.load_cert_chain(self.cert, self.key)
            context.load_verify_locations(cafile=str(self.ca))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"cannot load the p2p TLS files ({self.cert}, {self.key}, {self.ca}): {exc}"
            ) from None
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.verify_mode = ssl.CERT_REQUIRED
        return context

    def server_context(self) -> ssl.SSLContext:
        """Every connecting peer must present a certificate from ``ca``."""
        return self._context(ssl.PROTOCOL_TLS_SERVER)

    def client_context(self) -> ssl.SSLContext:
        """A peer's certificate must chain to ``ca`` and name the host dialled."""
        context = self._context(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = True
        return context


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
    client_version: str = f"quorum-py/v{VERSION}/python"
    p2p_host: str = "127.0.0.1"
    p2p_port: int | None = None  # None: no node-to-node endpoint (a lone dev node)
    raft_port: int | None = None
    #: Mutual TLS under the network CA on the node-to-node channel; None: plain HTTP.
    p2p_tls: PeerTls | None = None
    permissioned_nodes_file: Path | None = None
    tm_url: str | None = None  # the transaction manager's Q2T URL; None: no private transactions
    #: Client certificate, key and CA for a manager whose Q2T API requires mutual TLS
    #: (``tm_url`` https://...): a manager's Q2T beyond loopback always does.
    tm_tls: ManagerTls | None = None
    #: A follower that hears nothing from the leader for this long (up to 3 times as
    #: long, at random) stands for election. Raise it on a loaded or distant network.
    raft_election_timeout_ms: int = 400
    #: Every this many blocks (and at the head once the chain has been idle for a second)
    #: the node signs, through its manager, one commitment per party group it belongs to
    #: and sends it to the group's other members (docs/audit.md). 0 turns it off.
    commitment_interval: int = DEFAULT_COMMITMENT_INTERVAL
    #: ``GET /metrics`` (Prometheus) on this port (0: any free one); None: not served.
    metrics_port: int | None = None
    #: The interface of the metrics port: loopback unless a scraper elsewhere needs it.
    metrics_host: str = "127.0.0.1"

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
    """Read a node config file: TOML (``node.toml``, as ``qnet`` writes it), or JSON
    when the file is named ``*.json``, with the same fields. Relative paths are taken
    from the file's folder."""
    try:
        raw: dict[str, Any] = read_document(path)
    except ConfigFileError as exc:
        raise ConfigError(str(exc)) from None
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

    def a_list(key: str, default: Iterable[str]) -> tuple[str, ...]:
        value = raw.get(key)
        if value is None:
            return tuple(default)
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ConfigError(f"config {path}: {key!r} must be an array of strings")
        return tuple(item.strip() for item in value if item.strip())

    def a_size(key: str, default: int) -> int:
        value = raw.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"config {path}: {key!r} must be a positive integer")
        return value

    def a_count(key: str, default: int) -> int:
        value = raw.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"config {path}: {key!r} must be a whole number (0 or more)")
        return value

    def tls_paths(value: Any, key: str) -> tuple[Path, Path, Path] | None:
        """A ``{cert, key, ca}`` table as paths beside the config, None when absent."""
        if value is None:
            return None
        if not isinstance(value, dict) or not all(
            isinstance(value.get(k), str) for k in ("cert", "key", "ca")
        ):
            raise ConfigError(f"config {path}: {key!r} needs cert, key and ca paths")
        return base / value["cert"], base / value["key"], base / value["ca"]

    def a_manager_tls(value: Any) -> ManagerTls | None:
        paths = tls_paths(value, "tm_tls")
        return None if paths is None else ManagerTls(*paths)

    def a_peer_tls(value: Any) -> PeerTls | None:
        paths = tls_paths(value, "p2p_tls")
        return None if paths is None else PeerTls(*paths)

    insecure_unlock = raw.get("allow_insecure_unlock", False)
    if not isinstance(insecure_unlock, bool):
        raise ConfigError(f"config {path}: 'allow_insecure_unlock' must be true or false")
    rpc = RpcConfig(
        host=str(raw.get("rpc_host", "127.0.0.1")),
        http_port=a_port("http_port", 8545) or 0,
        ws_port=a_port("ws_port", None),
        max_body_bytes=a_size("max_body_bytes", DEFAULT_MAX_BODY_BYTES),
        max_batch_size=a_size("rpc_batch_request_limit", DEFAULT_MAX_BATCH_SIZE),
        max_batch_response_bytes=a_size(
            "rpc_batch_response_max_size", DEFAULT_MAX_BATCH_RESPONSE_BYTES
        ),
        http_vhosts=a_list("http_vhosts", DEFAULT_VHOSTS),
        http_corsdomain=a_list("http_corsdomain", ()),
        ws_origins=a_list("ws_origins", DEFAULT_WS_ORIGINS),
        http_api=parse_apis(a_list("http_api", DEFAULT_APIS), f"config {path}: 'http_api'"),
        ws_api=parse_apis(a_list("ws_api", DEFAULT_APIS), f"config {path}: 'ws_api'"),
        allow_insecure_unlock=insecure_unlock,
        ws_max_queued_bytes=a_size("ws_max_queued_bytes", DEFAULT_WS_MAX_QUEUED_BYTES),
    )
    if "raft_password_file" in raw:
        raise ConfigError(
            f"{path} was written by an earlier quorum-py whose Raft shared one password "
            "between all participants: make new bundles with qnet init (or a new folder "
            "with qnet up)"
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
        p2p_tls=a_peer_tls(raw.get("p2p_tls")),
        permissioned_nodes_file=a_path("permissioned_nodes"),
        tm_url=raw.get("tm_url"),
        tm_tls=a_manager_tls(raw.get("tm_tls")),
        raft_election_timeout_ms=a_duration_ms("raft_election_timeout_ms", 400),
        commitment_interval=a_count("commitment_interval", DEFAULT_COMMITMENT_INTERVAL),
        metrics_port=a_port("metrics_port", None),
        metrics_host=str(raw.get("metrics_host", "127.0.0.1")),
    )
