"""Assembles one manager process: keys, store, registry, both HTTP servers, discovery.

Start order matters: the P2P server listens before the first discovery round
(peers validate our keys by calling us back during that round), and recovery
runs only after discovery, when peers know where our keys live.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Middleware

from quorum_shared.metrics_server import MetricsServer, MetricsServerError
from tx_manager.api.p2p import build_p2p_app
from tx_manager.api.q2t import build_q2t_app
from tx_manager.config import Config, ListenConfig, read_password
from tx_manager.discovery import Discovery
from tx_manager.enclave import Enclave
from tx_manager.errors import ManagerConfigError
from tx_manager.keyfile import read_keypair
from tx_manager.metrics import ManagerMetrics
from tx_manager.partyinfo import PartyRegistry
from tx_manager.peer_client import PeerClient
from tx_manager.pg_store import PostgresStore
from tx_manager.service import TransactionManager
from tx_manager.store import SqliteStore, Store
from tx_manager.tls import q2t_server_context, server_context

log = logging.getLogger(__name__)

_DISCOVERY_ROUNDS_BEFORE_RECOVERY = 3


@dataclass(frozen=True)
class ListeningUrls:
    q2t: str
    p2p: str
    metrics: str | None = None

    def to_json(self) -> dict[str, object]:
        urls: dict[str, object] = {"q2t": self.q2t, "p2p": self.p2p, "pid": os.getpid()}
        if self.metrics is not None:
            urls["metrics"] = self.metrics
        return urls


def open_store(config: Config) -> Store:
    """The store the config names: PostgreSQL for a ``store`` URL, else the SQLite file."""
    if config.store_url is not None:
        return PostgresStore(config.store_url)
    return SqliteStore(config.storage_path)


def url_host(host: str) -> str:
    """The host part of a URL that reaches ``host`` (a wildcard bind: via loopback)."""
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - recognises a wildcard; binds nothing
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


async def _start_site(runner: web.AppRunner, listen: ListenConfig, what: str, **tls: object) -> str:
    if listen.unix_socket is not None:
        site: web.BaseSite = web.UnixSite(runner, str(listen.unix_socket))
    else:
        site = web.TCPSite(runner, listen.host, listen.port, **tls)  # type: ignore[arg-type]
    try:
        await site.start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ManagerConfigError(
                f"{what} address {listen.host}:{listen.port} is already in use"
            ) from exc
        raise ManagerConfigError(
            f"cannot listen for {what} on {listen.host}:{listen.port}: {exc}"
        ) from exc
    if listen.unix_socket is not None:
        return f"unix:{listen.unix_socket}"
    port = runner.addresses[-1][1]
    scheme = "https" if tls.get("ssl_context") is not None else "http"
    return f"{scheme}://{url_host(listen.host)}:{port}"


class ManagerServer:
    def __init__(self, config: Config, recover: bool | None = None) -> None:
        self.config = config
        self._recover_override = recover
        self._runners: list[web.AppRunner] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._store: Store | None = None
        self._peers: PeerClient | None = None
        self.metrics = ManagerMetrics()
        self._metrics_server: MetricsServer | None = None
        self.urls: ListeningUrls | None = None
        self.service: TransactionManager | None = None
        self.discovery: Discovery | None = None

    async def start(self) -> ListeningUrls:
        config = self.config
        keypairs = [
            read_keypair(
                k.public_key, k.private_key, read_password(k.password_file, k.password_env)
            )
            for k in config.keys
        ]
        enclave = Enclave(keypairs, config.limits.derived_key_cache)
        try:
            self._store = open_store(config)
            registry = PartyRegistry(
                enclave.public_keys,
                config.peers,
                config.limits.max_peers,
                config.limits.max_key_routes,
            )
            self._peers = PeerClient(config.tls, config.peer_timeout)
            self.service = TransactionManager(
                enclave, self._store, registry, self._peers, config.max_body_bytes // 2
            )
            self.discovery = Discovery(registry, enclave, self._peers, config.discovery_interval)
            recover_at_start = await self._should_recover()
            if recover_at_start:  # before listening: no window where a miss means 404
                self.service.announce_recovery()
            allowed = (
                frozenset(config.tls.allowed_fingerprints)
                if config.tls.mode == "allowlist"
                else None
            )
            p2p_runner = web.AppRunner(
                build_p2p_app(
                    self.service,
                    self.discovery,
                    config.max_body_bytes,
                    allowed,
                    config.limits,
                    observe=self._observer("p2p"),
                ),
                access_log=None,
            )
            q2t_runner = web.AppRunner(
                build_q2t_app(self.service, config.max_body_bytes, observe=self._observer("q2t")),
                access_log=None,
            )
            for runner in (p2p_runner, q2t_runner):
                await runner.setup()
                self._runners.append(runner)
            p2p_url = await _start_site(
                p2p_runner, config.p2p, "P2P", ssl_context=server_context(config.tls)
            )
            q2t_url = await _start_site(
                q2t_runner, config.q2t, "Q2T", ssl_context=q2t_server_context(config.q2t_tls)
            )
            metrics_url = await self._start_metrics(registry)
        except BaseException:
            await self.stop()
            raise
        registry.set_self_url(config.advertised_url or p2p_url)
        self.urls = ListeningUrls(q2t=q2t_url, p2p=p2p_url, metrics=metrics_url)
        if config.ports_file is not None:
            _write_atomically(config.ports_file, json.dumps(self.urls.to_json()))
        self._tasks.append(asyncio.create_task(self._background(recover_at_start)))
        return self.urls

    def _observer(self, api: str) -> Middleware | None:
        """The request-metrics middleware, only when metrics are served."""
        return self.metrics.middleware(api) if self.config.metrics is not None else None

    async def _start_metrics(self, registry: PartyRegistry) -> str | None:
        store, peers, metrics = self._store, self._peers, self.metrics
        if self.config.metrics is None or store is None or peers is None:
            return None
        metrics.watch(registry, peers, lambda: metrics.store_bytes)

        async def refresh_store_size() -> None:
            metrics.store_bytes = await store.size_bytes()

        self._metrics_server = MetricsServer(
            metrics.registry,
            self.config.metrics.host,
            self.config.metrics.port,
            before_scrape=refresh_store_size,
        )
        try:
            return await self._metrics_server.start()
        except MetricsServerError as exc:
            raise ManagerConfigError(str(exc)) from exc

    async def _background(self, recover_at_start: bool) -> None:
        """First discovery rounds, then the announced recovery if any, then discovery
        forever."""
        if self.discovery is None or self.service is None or self._store is None:
            return
        known = -1
        for _ in range(_DISCOVERY_ROUNDS_BEFORE_RECOVERY):
            if known == len(self.discovery.registry.peers):
                break
            known = len(self.discovery.registry.peers)
            await self._discovery_round()
        if recover_at_start:
            try:
                received = await self.service.recover(announced=True)
                log.info("recovery: received %d envelopes from peers", received)
            except Exception:
                log.exception("recovery at start failed; run 'tx-manager resend' to retry")
        while True:
            await asyncio.sleep(self.discovery.interval)
            await self._discovery_round()

    async def _discovery_round(self) -> None:
        if self.discovery is None:
            return
        try:
            await self.discovery.round()
        except Exception:
            log.exception("discovery round failed; retrying next interval")

    async def _should_recover(self) -> bool:
        if self._recover_override is not None:
            return self._recover_override
        if self.config.recover == "always":
            return True
        if self.config.recover == "if-empty" and self._store is not None:
            return await self._store.count_envelopes() == 0 and bool(self.config.peers)
        return False

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: S110 - shutting down
                pass
        self._tasks.clear()
        if self._metrics_server is not None:
            await self._metrics_server.stop()
            self._metrics_server = None
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        if self.service is not None:
            await self.service.close()
        if self._peers is not None:
            await self._peers.close()
        if self._store is not None:
            await self._store.close()
            self._store = None


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
