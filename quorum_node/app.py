"""Assembling and running one node process: database, chain, accounts, pool, consensus,
JSON-RPC servers; and stopping them in the reverse order."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import signal
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

from quorum_node.accounts import AccountStore
from quorum_node.chain.db import SqliteDB
from quorum_node.chain.genesis import Genesis
from quorum_node.chain.service import ChainService
from quorum_node.config import NodeConfig, check_insecure_unlock
from quorum_node.consensus.base import ConsensusEngine
from quorum_node.consensus.raft import RaftEngine
from quorum_node.consensus.raft_state import RaftMember
from quorum_node.consensus.solo import SoloEngine
from quorum_node.errors import ConfigError
from quorum_node.local_transactions import LocalTransactions
from quorum_node.metrics import NodeMetrics
from quorum_node.node import Node
from quorum_node.p2p.identity import Enode, NodeKey
from quorum_node.p2p.network import PeerNetwork
from quorum_node.p2p.permissions import PermissionedNodes
from quorum_node.privacy.audit_service import AuditService
from quorum_node.privacy.audit_store import AlarmStore
from quorum_node.privacy.disclosure import DisclosureService
from quorum_node.privacy.group_change_service import GroupChangeService
from quorum_node.privacy.handover_service import HandoverService
from quorum_node.privacy.payloads import PayloadResolver
from quorum_node.privacy.processor import PrivacyProcessor, PrivateBlocks
from quorum_node.privacy.service import PrivacyService
from quorum_node.privacy.store import PrivateStore
from quorum_node.rpc.admin import AdminNamespace
from quorum_node.rpc.dispatcher import Dispatcher
from quorum_node.rpc.eth import EthNamespace
from quorum_node.rpc.eth_filters import FilterNamespace
from quorum_node.rpc.evm import EvmNamespace
from quorum_node.rpc.net import NetNamespace
from quorum_node.rpc.quorum import QuorumNamespace
from quorum_node.rpc.quorum_extension import QuorumExtensionNamespace
from quorum_node.rpc.raft import RaftNamespace
from quorum_node.rpc.server import RpcServer
from quorum_node.rpc.txpool import TxpoolNamespace
from quorum_node.rpc.web3 import Web3Namespace
from quorum_node.sending import NonceReservations, TransactionSender
from quorum_shared.heap import settle_startup_heap
from quorum_shared.metrics_server import MetricsServer, MetricsServerError
from quorum_shared.secret_files import secret_directory
from tx_manager.client import Q2TClient

logger = logging.getLogger(__name__)


@dataclass
class RunningNode:
    node: Node
    server: RpcServer
    db: SqliteDB

    @property
    def http_url(self) -> str:
        return f"http://{self.server_host}:{self.server.http_port}"

    @property
    def ws_url(self) -> str | None:
        return f"ws://{self.server_host}:{self.server.ws_port}" if self.server.ws_port else None

    server_host: str = "127.0.0.1"
    network: PeerNetwork | None = None
    on_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    metrics: NodeMetrics | None = None
    metrics_server: MetricsServer | None = None

    @property
    def metrics_url(self) -> str | None:
        return self.metrics_server.url if self.metrics_server is not None else None

    async def stop(self) -> None:
        if self.metrics_server is not None:
            await self.metrics_server.stop()
        await self.server.stop()
        for closer in self.on_stop:
            await closer()
        await self.node.close()
        if self.network is not None:
            await self.network.stop()
        self.db.close()


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    except Exception:
        logger.exception("the replay of local transactions failed")


def read_password(config: NodeConfig) -> str:
    if config.password_file is None:
        return ""
    try:
        return config.password_file.read_text().rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(
            f"cannot read password file {config.password_file}: {exc.strerror}"
        ) from None


def _raft_setup(config: NodeConfig, node: Node) -> tuple[PeerNetwork, RaftEngine, Enode]:
    """The node key, the permissioned cluster, the signed peer network and the engine."""
    if config.p2p_port is None or config.raft_port is None:
        raise ConfigError("raft needs a p2p port and a raft port")
    if config.permissioned_nodes_file is None:
        raise ConfigError("raft needs a permissioned-nodes file listing the cluster")
    node_key = NodeKey.load_or_create(config.node_key_path)
    permissions = PermissionedNodes(config.permissioned_nodes_file)
    enodes = permissions.enodes()
    members = [RaftMember(index + 1, enode) for index, enode in enumerate(enodes)]
    self_enode = next((e for e in enodes if e.node_id == node_key.node_id), None)
    if self_enode is None:
        raise ConfigError(
            f"this node ({node_key.node_id[:16]}…) is not in {config.permissioned_nodes_file}"
        )
    if self_enode.raft_port != config.raft_port or self_enode.p2p_port != config.p2p_port:
        raise ConfigError(f"ports in {config.permissioned_nodes_file} differ from the config")
    network = PeerNetwork(node_key, permissions, config.p2p_host, config.p2p_port)
    if config.p2p_tls is not None:
        network.server_tls = config.p2p_tls.server_context()
        network.client_tls = config.p2p_tls.client_context()
    engine = RaftEngine(
        node,
        node,
        network,
        members,
        self_enode,
        config.raft_dir,
        block_period=config.block_period_ms / 1000,
        election_timeout=config.raft_election_timeout_ms / 1000,
    )
    return network, engine, self_enode


async def start_node(config: NodeConfig) -> RunningNode:
    """Build and start every part of a node; if any step fails, what was started is
    stopped again before the error propagates. ``RunningNode.stop`` undoes a success."""
    secret_directory(config.datadir)  # holds the node key and the keystore
    genesis = Genesis.load(config.genesis_file)
    accounts = AccountStore()
    accounts.load_keystore(config.keystore_dir, read_password(config))
    for key in config.extra_keys:
        accounts.add_key(key)
    check_insecure_unlock(config.rpc, len(accounts.addresses()))
    started = AsyncExitStack()
    try:
        db = SqliteDB(config.chain_db_path)
        started.callback(db.close)
        private_store = PrivateStore(db)
        chain = ChainService(db, genesis, private_view=private_store)
        # One client to this node's manager, for reading payloads and for sending.
        manager = None
        if config.tm_url:
            tls = config.tm_tls.client_context() if config.tm_tls is not None else None
            manager = Q2TClient(config.tm_url, ssl_context=tls)
        if manager is not None:
            started.push_async_callback(manager.close)
        metrics = NodeMetrics() if config.metrics_port is not None else None
        if manager is not None and metrics is not None:
            manager.observer = metrics.on_manager_request
        resolver = PayloadResolver(manager)
        processor = PrivacyProcessor(db, private_store)
        private_blocks = PrivateBlocks(resolver, processor)
        node = Node(chain, accounts, config.coinbase, private_blocks, LocalTransactions(db))
        started.push_async_callback(node.close)
        sender = TransactionSender(node, NonceReservations(node))
        privacy = PrivacyService(node, sender, private_store, manager)
        dispatcher = Dispatcher(config.rpc.max_batch_size, config.rpc.max_batch_response_bytes)
        network: PeerNetwork | None = None
        engine: ConsensusEngine
        if config.consensus == "solo":
            engine = SoloEngine(node, block_period=config.block_period_ms / 1000)
        elif config.consensus == "raft":
            network, raft, self_enode = _raft_setup(config, node)
            engine = raft
            await network.start()
            started.push_async_callback(network.stop)
            dispatcher.register(RaftNamespace(raft))
            dispatcher.register(AdminNamespace(network, self_enode, config.client_version))
        else:
            raise ConfigError(f"unknown consensus engine {config.consensus!r} (solo or raft)")
        node.engine = engine

        audit: AuditService | None = None
        if manager is not None:
            audit = AuditService(
                node,
                private_store,
                manager,
                AlarmStore(config.datadir / "audit.sqlite"),
                config.commitment_interval,
            )
        disclosure = DisclosureService(node, private_store, manager, audit) if manager else None
        handovers: HandoverService | None = None
        group_changes: GroupChangeService | None = None
        if manager is not None:
            handovers = HandoverService(
                node,
                privacy,
                private_store,
                manager,
                processor,
                resolver,
                disclosure,
                config.datadir / "group-changes",
            )
            group_changes = GroupChangeService(node, privacy, private_store, resolver, handovers)
        filters = FilterNamespace(node, audit)
        peers = network
        live_peers = (lambda: len(peers.live_peers())) if peers is not None else (lambda: 0)
        for namespace in (
            EthNamespace(node, privacy, sender),
            QuorumNamespace(privacy, audit, disclosure),
            QuorumExtensionNamespace(group_changes),
            filters,
            NetNamespace(chain.chain_id, live_peers),
            Web3Namespace(config.client_version),
            TxpoolNamespace(node.pool),
            EvmNamespace(engine),
        ):
            dispatcher.register(namespace)
        server = RpcServer(dispatcher, config.rpc, on_disconnect=filters.drop_connection)
        try:
            await server.start()
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {config.rpc.host}: {exc.strerror or exc}"
            ) from None
        started.push_async_callback(server.stop)
        await engine.start()
        replay = asyncio.create_task(node.replay_local_transactions(), name="replay-local")
        started.push_async_callback(_cancel, replay)
        if audit is not None:
            await audit.start()
            started.push_async_callback(audit.stop)
        if handovers is not None:
            await handovers.start()
            started.push_async_callback(handovers.stop)
        metrics_server = None
        if metrics is not None and config.metrics_port is not None:
            metrics.watch(node, engine, live_peers)
            if audit is not None:
                audit.alarm_listeners.append(metrics.on_alarm)
            metrics_server = MetricsServer(
                metrics.registry, config.metrics_host, config.metrics_port
            )
            try:
                await metrics_server.start()
            except MetricsServerError as exc:
                raise ConfigError(str(exc)) from None
            started.push_async_callback(metrics_server.stop)
    except BaseException:
        await started.aclose()
        raise
    started.pop_all()  # from here on, RunningNode.stop stops them in its own order
    running = RunningNode(
        node,
        server,
        db,
        server_host=config.rpc.host,
        network=network,
        metrics=metrics,
        metrics_server=metrics_server,
    )
    running.on_stop.append(functools.partial(_cancel, replay))
    if audit is not None:
        running.on_stop.append(audit.stop)
    if handovers is not None:
        running.on_stop.append(handovers.stop)
    if manager is not None:
        running.on_stop.append(manager.close)
    endpoints = {"http": running.http_url, "ws": running.ws_url}
    if running.metrics_url is not None:
        endpoints["metrics"] = running.metrics_url
    (config.datadir / "endpoints.json").write_text(json.dumps(endpoints) + "\n")
    return running


async def serve(config: NodeConfig) -> None:
    """Run until SIGINT or SIGTERM."""
    running = await start_node(config)
    print(f"HTTP JSON-RPC: {running.http_url}", flush=True)
    if running.ws_url:
        print(f"WebSocket JSON-RPC: {running.ws_url}", flush=True)
    if running.metrics_url:
        print(f"metrics: {running.metrics_url}", flush=True)
    logger.info(
        "started",
        extra={
            "rpc_url": running.http_url,
            "ws_url": running.ws_url,
            "metrics_url": running.metrics_url,
        },
    )
    for address in running.node.accounts.addresses():
        print(f"account: 0x{address.hex()}", flush=True)
    frozen = settle_startup_heap()
    logger.debug("froze %d start-up objects out of the garbage collector's walks", frozen)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    logger.info("stopping")
    await running.stop()
