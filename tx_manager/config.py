"""The manager's configuration: one TOML or JSON file, paths relative to it.

Every field is checked when loaded, so a bad file stops the process with one
clear line instead of a failure later. See docs/tx-manager.md for an example.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quorum_shared.addresses import is_loopback_host
from quorum_shared.config_files import ConfigFileError, read_document
from tx_manager.errors import ManagerConfigError

DEFAULT_MAX_BODY = 5 * 1024 * 1024
TLS_MODES = ("off", "ca", "allowlist")
RECOVER_MODES = ("never", "if-empty", "always")


@dataclass(frozen=True)
class KeyConfig:
    public_key: Path
    private_key: Path
    password_file: Path | None = None
    password_env: str | None = None


@dataclass(frozen=True)
class ListenConfig:
    host: str = "127.0.0.1"
    port: int = 0
    unix_socket: Path | None = None


@dataclass(frozen=True)
class TlsConfig:
    """Mutual TLS on the P2P API.

    ``ca``: both sides present certificates signed by ``ca``. ``allowlist``: the
    same handshake, and the peer's certificate SHA-256 fingerprint must also be
    listed (pins individual certificates; for self-signed ones, put them in ``ca``).
    """

    mode: str = "off"
    cert: Path | None = None
    key: Path | None = None
    ca: Path | None = None
    allowed_fingerprints: tuple[str, ...] = ()
    verify_hostname: bool = True

    @property
    def enabled(self) -> bool:
        return self.mode != "off"


@dataclass(frozen=True)
class Q2tTlsConfig:
    """Mutual TLS on the Q2T API (``[q2t.tls]``): the only way to serve it beyond loopback.

    The manager presents ``cert``/``key`` and requires every client to present a
    certificate that chains to ``ca``. Q2T decrypts for whoever asks, so without
    this it must listen on a loopback address or a Unix socket.
    """

    cert: Path
    key: Path
    ca: Path


@dataclass(frozen=True)
class LimitsConfig:
    """Bounds on what unauthenticated callers can make the manager hold or do.

    The rate limits apply per caller address on the P2P API: ``partyinfo_*`` to
    ``GET``/``POST /partyinfo`` and ``/partyinfo/validate``, ``resend_*`` to
    ``/resend``. The defaults leave honest traffic untouched: discovery posts
    once per peer and interval (qnet: 1 s), and managers sharing one host share
    one address, so dozens of peers at once fit; a recovery sends one
    ``/resend`` per peer and key.
    """

    max_peers: int = 1024
    max_key_routes: int = 4096
    derived_key_cache: int = 4096
    partyinfo_rate: float = 50.0
    partyinfo_burst: int = 200
    resend_rate: float = 5.0
    resend_burst: int = 50


@dataclass(frozen=True)
class Config:
    data_dir: Path
    keys: tuple[KeyConfig, ...]
    storage_path: Path
    peers: tuple[str, ...] = ()
    q2t: ListenConfig = ListenConfig()
    p2p: ListenConfig = ListenConfig()
    q2t_tls: Q2tTlsConfig | None = None
    advertised_url: str | None = None
    tls: TlsConfig = TlsConfig()
    max_body_bytes: int = DEFAULT_MAX_BODY
    discovery_interval: float = 5.0
    peer_timeout: float = 10.0
    recover: str = "if-empty"
    ports_file: Path | None = None
    limits: LimitsConfig = LimitsConfig()
    #: ``GET /metrics`` (Prometheus) on a port of its own; None: not served.
    metrics: ListenConfig | None = None
    #: ``postgresql://…``: keep the store in PostgreSQL instead of the SQLite file at
    #: ``storage_path`` (several managers of one party may share the database).
    store_url: str | None = None

    @property
    def uses_postgresql(self) -> bool:
        return self.store_url is not None


def _get(table: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any) -> Any:
    value = table.get(name, default)
    if value is not default and not isinstance(value, kind):
        raise ManagerConfigError(f"config field {name!r} has the wrong type")
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise ManagerConfigError(f"config field {name!r} must be a number")
    return value


def _path(base: Path, value: Any, name: str) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ManagerConfigError(f"config field {name!r} must be a path string")
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path)


def _listen(base: Path, table: Any, name: str) -> ListenConfig:
    if table is None:
        return ListenConfig()
    if not isinstance(table, dict):
        raise ManagerConfigError(f"config section {name!r} must be a table")
    port = _get(table, "port", int, 0)
    if not 0 <= port <= 65535:
        raise ManagerConfigError(f"{name}.port {port} is out of range")
    return ListenConfig(
        host=_get(table, "host", str, "127.0.0.1"),
        port=port,
        unix_socket=_path(base, table.get("unix_socket"), f"{name}.unix_socket"),
    )


def _metrics(table: Any) -> ListenConfig | None:
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ManagerConfigError("config section 'metrics' must be a table with host and port")
    unknown = sorted(set(table) - {"host", "port"})
    if unknown:
        raise ManagerConfigError(f"unknown field metrics.{unknown[0]}")
    port = _get(table, "port", int, None)
    if port is None or not 0 <= port <= 65535:
        raise ManagerConfigError("metrics.port must be a port number (0: any free port)")
    return ListenConfig(host=_get(table, "host", str, "127.0.0.1"), port=port)


POSTGRESQL_SCHEMES = ("postgresql://", "postgres://")


def _store_url(value: Any) -> str | None:
    if value is None or value == "sqlite":
        return None
    if not isinstance(value, str) or not value.startswith(POSTGRESQL_SCHEMES):
        raise ManagerConfigError(
            'store must be "sqlite" (the file at storage_path) or a postgresql:// URL'
        )
    return value


def _q2t_tls(base: Path, table: Any) -> Q2tTlsConfig | None:
    if not isinstance(table, dict) or table.get("tls") is None:
        return None
    tls = table["tls"]
    if not isinstance(tls, dict):
        raise ManagerConfigError("config section 'q2t.tls' must be a table")
    cert, key, ca = (
        _path(base, tls.get(name), f"q2t.tls.{name}") for name in ("cert", "key", "ca")
    )
    if cert is None or key is None or ca is None:
        raise ManagerConfigError(
            "q2t.tls needs cert, key and ca (the CA that client certificates must chain to)"
        )
    return Q2tTlsConfig(cert=cert, key=key, ca=ca)


def _check_q2t_exposure(q2t: ListenConfig, tls: Q2tTlsConfig | None) -> None:
    if q2t.unix_socket is not None or is_loopback_host(q2t.host) or tls is not None:
        return
    raise ManagerConfigError(
        f"q2t.host {q2t.host!r} is not a loopback address and the Q2T API decrypts for "
        "whoever asks: bind it to 127.0.0.1 or a Unix socket, or configure [q2t.tls] "
        "(mutual TLS, client certificates required)"
    )


def _tls(base: Path, table: Any) -> TlsConfig:
    if table is None:
        return TlsConfig()
    if not isinstance(table, dict):
        raise ManagerConfigError("config section 'tls' must be a table")
    mode = _get(table, "mode", str, "off")
    if mode not in TLS_MODES:
        raise ManagerConfigError(f"tls.mode must be one of {', '.join(TLS_MODES)}")
    fingerprints = _get(table, "allowed_fingerprints", list, [])
    normalised = []
    for fingerprint in fingerprints:
        if not isinstance(fingerprint, str):
            raise ManagerConfigError("tls.allowed_fingerprints must be hex strings")
        hex_digits = fingerprint.replace(":", "").lower()
        if len(hex_digits) != 64 or any(c not in "0123456789abcdef" for c in hex_digits):
            raise ManagerConfigError(f"tls fingerprint {fingerprint!r} is not a SHA-256 hex digest")
        normalised.append(hex_digits)
    tls = TlsConfig(
        mode=mode,
        cert=_path(base, table.get("cert"), "tls.cert"),
        key=_path(base, table.get("key"), "tls.key"),
        ca=_path(base, table.get("ca"), "tls.ca"),
        allowed_fingerprints=tuple(normalised),
        verify_hostname=_get(table, "verify_hostname", bool, True),
    )
    if tls.enabled and (tls.cert is None or tls.key is None or tls.ca is None):
        raise ManagerConfigError(f"tls.mode {mode} needs tls.cert, tls.key and tls.ca")
    if mode == "allowlist" and not tls.allowed_fingerprints:
        raise ManagerConfigError("tls.mode allowlist needs tls.allowed_fingerprints")
    return tls


def _limits(table: Any, configured_peers: int) -> LimitsConfig:
    if table is None:
        return LimitsConfig()
    if not isinstance(table, dict):
        raise ManagerConfigError("config section 'limits' must be a table")
    defaults = LimitsConfig()
    unknown = sorted(set(table) - set(defaults.__dataclass_fields__))
    if unknown:
        raise ManagerConfigError(f"unknown field limits.{unknown[0]}")
    values: dict[str, Any] = {}
    for name in defaults.__dataclass_fields__:
        default = getattr(defaults, name)
        kind: type | tuple[type, ...] = (int, float) if isinstance(default, float) else int
        value = _get(table, name, kind, default)
        if value <= 0:
            raise ManagerConfigError(f"limits.{name} must be positive")
        values[name] = float(value) if isinstance(default, float) else value
    limits = LimitsConfig(**values)
    if limits.partyinfo_burst < 1 or limits.resend_burst < 1:
        raise ManagerConfigError("rate limit bursts must be at least 1")
    if configured_peers > limits.max_peers:
        raise ManagerConfigError(
            f"{configured_peers} configured peers exceed limits.max_peers {limits.max_peers}"
        )
    return limits


def parse_config(document: dict[str, Any], base: Path) -> Config:
    data_dir = _path(base, _get(document, "data_dir", str, "."), "data_dir") or base
    raw_keys = _get(document, "keys", list, None)
    if not raw_keys:
        raise ManagerConfigError("config needs at least one entry in 'keys'")
    keys = []
    for index, entry in enumerate(raw_keys):
        if not isinstance(entry, dict):
            raise ManagerConfigError(f"keys[{index}] must be a table with public and private")
        public = _path(base, entry.get("public"), f"keys[{index}].public")
        private = _path(base, entry.get("private"), f"keys[{index}].private")
        if public is None or private is None:
            raise ManagerConfigError(f"keys[{index}] needs both 'public' and 'private' paths")
        env = entry.get("password_env")
        if env is not None and not isinstance(env, str):
            raise ManagerConfigError(f"keys[{index}].password_env must be a string")
        keys.append(
            KeyConfig(
                public,
                private,
                _path(base, entry.get("password_file"), f"keys[{index}].password_file"),
                env,
            )
        )
    peers = _get(document, "peers", list, [])
    if not all(isinstance(p, str) and p.startswith(("http://", "https://")) for p in peers):
        raise ManagerConfigError("peers must be a list of http(s) URLs")
    recover = _get(document, "recover", str, "if-empty")
    if recover not in RECOVER_MODES:
        raise ManagerConfigError(f"recover must be one of {', '.join(RECOVER_MODES)}")
    max_body = _get(document, "max_body_bytes", int, DEFAULT_MAX_BODY)
    interval = _get(document, "discovery_interval", (int, float), 5.0)
    timeout = _get(document, "peer_timeout", (int, float), 10.0)
    if max_body <= 0 or interval <= 0 or timeout <= 0:
        raise ManagerConfigError(
            "max_body_bytes, discovery_interval and peer_timeout must be positive"
        )
    advertised = _get(document, "advertised_url", str, None)
    q2t = _listen(base, document.get("q2t"), "q2t")
    q2t_tls = _q2t_tls(base, document.get("q2t"))
    _check_q2t_exposure(q2t, q2t_tls)
    return Config(
        data_dir=data_dir,
        keys=tuple(keys),
        storage_path=_path(data_dir, _get(document, "storage_path", str, "tm.db"), "storage_path")
        or data_dir / "tm.db",
        peers=tuple(p.rstrip("/") for p in peers),
        q2t=q2t,
        q2t_tls=q2t_tls,
        p2p=_listen(base, document.get("p2p"), "p2p"),
        advertised_url=advertised.rstrip("/") if advertised else None,
        tls=_tls(base, document.get("tls")),
        max_body_bytes=max_body,
        discovery_interval=float(interval),
        peer_timeout=float(timeout),
        recover=recover,
        ports_file=_path(data_dir, _get(document, "ports_file", str, "ports.json"), "ports_file"),
        limits=_limits(document.get("limits"), len(peers)),
        metrics=_metrics(document.get("metrics")),
        store_url=_store_url(document.get("store")),
    )


def load_config(path: Path) -> Config:
    """Read ``tm.toml`` (TOML), or a ``*.json`` file with the same fields."""
    try:
        document = read_document(path)
    except ConfigFileError as exc:
        raise ManagerConfigError(str(exc)) from exc
    return parse_config(document, path.parent.resolve())


def read_password(password_file: Path | None, password_env: str | None) -> bytes | None:
    """A key's password, from a file or an environment variable (None: the key is unlocked)."""
    if password_file is not None:
        try:
            return password_file.read_bytes().rstrip(b"\r\n")
        except OSError as exc:
            raise ManagerConfigError(
                f"cannot read password file {password_file}: {exc.strerror}"
            ) from exc
    if password_env is not None:
        value = os.environ.get(password_env)
        if value is None:
            raise ManagerConfigError(f"environment variable {password_env} is not set")
        return value.encode()
    return None
