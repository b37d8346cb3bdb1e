"""Assembling and running one node process: database, chain, accounts, pool, consensus,
JSON-RPC servers; and stopping them in the reverse order."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from dataclasses import dataclass

from quorum_node.accounts import AccountStore
from quorum_node.chain.db import SqliteDB
from quorum_node.chain.genesis import Genesis
from quorum_node.chain.service import ChainService
from quorum_node.config import NodeConfig
from quorum_node.consensus.solo import SoloEngine
from quorum_node.errors import ConfigError
from quorum_node.node import Node
from quorum_node.rpc.dispatcher import Dispatcher
from quorum_node.rpc.eth import EthNamespace
from quorum_node.rpc.eth_filters import FilterNamespace
from quorum_node.rpc.evm import EvmNamespace
from quorum_node.rpc.net import NetNamespace
from quorum_node.rpc.server import RpcServer
from quorum_node.rpc.txpool import TxpoolNamespace
from quorum_node.rpc.web3 import Web3Namespace

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

    async def stop(self) -> None:
        await self.server.stop()
        await self.node.close()
        self.db.close()


def read_password(config: NodeConfig) -> str:
    if config.password_file is None:
        return ""
    try:
        return config.password_file.read_text().rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(f"cannot read password file {config.password_file}: {exc.strerror}") from None


async def start_node(config: NodeConfig) -> RunningNode:
    config.datadir.mkdir(parents=True, exist_ok=True)
    genesis = Genesis.load(config.genesis_file)
    accounts = AccountStore()
    accounts.load_keystore(config.keystore_dir, read_password(config))
    for key in config.extra_keys:
        accounts.add_key(key)
    db = SqliteDB(config.chain_db_path)
    try:
        chain = ChainService(db, genesis)
    except Exception:
        db.close()
        raise
    node = Node(chain, accounts, config.coinbase)
    if config.consensus != "solo":
        db.close()
        raise ConfigError(f"unknown consensus engine {config.consensus!r} (available: solo)")
    node.engine = SoloEngine(node, block_period=config.block_period_ms / 1000)

    dispatcher = Dispatcher(max_batch_size=config.rpc.max_batch_size)
    filters = FilterNamespace(node)
    for namespace in (
        EthNamespace(node),
        filters,
        NetNamespace(chain.chain_id),
        Web3Namespace(config.client_version),
        TxpoolNamespace(node.pool),
        EvmNamespace(node),
    ):
        dispatcher.register(namespace)
    server = RpcServer(dispatcher, config.rpc, on_disconnect=filters.drop_connection)
    try:
        await server.start()
    except OSError as exc:
        await node.close()
        db.close()
        raise ConfigError(f"cannot listen on {config.rpc.host}: {exc.strerror or exc}") from None
    await node.engine.start()
    running = RunningNode(node, server, db, server_host=config.rpc.host)
    endpoints = {"http": running.http_url, "ws": running.ws_url}
    (config.datadir / "endpoints.json").write_text(json.dumps(endpoints) + "\n")
    return running


async def serve(config: NodeConfig) -> None:
    """Run until SIGINT or SIGTERM."""
    running = await start_node(config)
    print(f"HTTP JSON-RPC: {running.http_url}", flush=True)
    if running.ws_url:
        print(f"WebSocket JSON-RPC: {running.ws_url}", flush=True)
    for address in running.node.accounts.addresses():
        print(f"account: 0x{address.hex()}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    logger.info("stopping")
    await running.stop()
