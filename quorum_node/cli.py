"""``quorum-node``: run a node, or a one-node development chain like ``geth --dev``."""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from eth_keys import keys
from eth_typing import Address

from quorum_node.accounts import AccountStore, write_keystore_file
from quorum_node.app import serve
from quorum_node.chain.genesis import DEFAULT_CHAIN_ID, Genesis, GenesisAccount
from quorum_node.config import (
    DEFAULT_APIS,
    DEFAULT_COMMITMENT_INTERVAL,
    DEFAULT_MAX_BATCH_RESPONSE_BYTES,
    DEFAULT_MAX_BATCH_SIZE,
    DEFAULT_VHOSTS,
    DEFAULT_WS_MAX_QUEUED_BYTES,
    DEFAULT_WS_ORIGINS,
    DEV_APIS,
    ManagerTls,
    NodeConfig,
    RpcConfig,
    load_node_config,
    parse_apis,
)
from quorum_node.errors import ConfigError
from quorum_node.qnet.audit import check_recovery
from quorum_node.qnet.processes import rpc_call
from quorum_node.wipe import wipe_chain_state
from quorum_shared.logs import LOG_FORMATS, configure_logging
from quorum_shared.secret_files import secret_directory
from quorum_shared.version import VERSION

DEV_BALANCE = 10**30  # a million billion ether: development accounts never run dry


def _hex_key(text: str) -> bytes:
    body = text[2:] if text.lower().startswith("0x") else text
    try:
        key = bytes.fromhex(body)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a 32-byte hex private key") from None
    if len(key) != 32:
        raise argparse.ArgumentTypeError("expected a 32-byte hex private key")
    return key


def _whole_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("expected 0 or more")
    return value


def _comma_list(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


def _add_rpc_options(parser: argparse.ArgumentParser, default_apis: frozenset[str]) -> None:
    parser.add_argument("--datadir", type=Path, help="data directory")
    parser.add_argument("--http-host", default="127.0.0.1", help="interface for HTTP and WS")
    parser.add_argument("--http-port", type=int, default=8545, help="HTTP JSON-RPC port (0: any)")
    parser.add_argument(
        "--ws-port", type=int, default=8546, help="WebSocket JSON-RPC port (0: any)"
    )
    parser.add_argument(
        "--block-period",
        type=int,
        default=50,
        metavar="MS",
        help="least time between blocks while transactions wait (default 50)",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=5 * 1024 * 1024,
        help="largest JSON-RPC request body or WebSocket message accepted (default 5 MB)",
    )
    access = parser.add_argument_group(
        "who may use JSON-RPC (as geth's --http.* / --ws.* flags; comma-separated lists)"
    )
    access.add_argument(
        "--http-vhosts",
        type=_comma_list,
        default=DEFAULT_VHOSTS,
        metavar="LIST",
        help="Host header names served on HTTP and WebSocket; an IP address is always "
        "served; * serves any (default: localhost)",
    )
    access.add_argument(
        "--http-corsdomain",
        type=_comma_list,
        default=(),
        metavar="LIST",
        help="browser origins allowed cross-origin HTTP calls, or * (default: none)",
    )
    access.add_argument(
        "--ws-origins",
        type=_comma_list,
        default=DEFAULT_WS_ORIGINS,
        metavar="LIST",
        help="browser origins allowed to open a WebSocket, or *; handshakes without an "
        f"Origin (programs) are allowed (default: {','.join(DEFAULT_WS_ORIGINS)})",
    )
    apis = ",".join(sorted(default_apis))
    access.add_argument(
        "--http-api",
        type=_comma_list,
        default=tuple(default_apis),
        metavar="LIST",
        help=f"namespaces served over HTTP (default: {apis}; admin, raft, debug and "
        "personal only when listed)",
    )
    access.add_argument(
        "--ws-api",
        type=_comma_list,
        default=tuple(default_apis),
        metavar="LIST",
        help=f"namespaces served over WebSocket (default: {apis})",
    )
    access.add_argument(
        "--allow-insecure-unlock",
        action="store_true",
        help="hold unlocked accounts even when JSON-RPC listens beyond loopback",
    )
    limits = parser.add_argument_group("JSON-RPC limits")
    limits.add_argument(
        "--rpc-batch-request-limit",
        type=int,
        default=DEFAULT_MAX_BATCH_SIZE,
        metavar="N",
        help=f"most calls in one batch (default {DEFAULT_MAX_BATCH_SIZE})",
    )
    limits.add_argument(
        "--rpc-batch-response-max-size",
        type=int,
        default=DEFAULT_MAX_BATCH_RESPONSE_BYTES,
        metavar="BYTES",
        help="largest batch answer; later calls get -32003 (default 25 MB)",
    )
    limits.add_argument(
        "--ws-max-queued-bytes",
        type=int,
        default=DEFAULT_WS_MAX_QUEUED_BYTES,
        metavar="BYTES",
        help="outgoing backlog at which a WebSocket client that reads too slowly is "
        "disconnected (default 16 MB)",
    )
    parser.add_argument(
        "--commitment-interval",
        type=_whole_number,
        default=None,
        metavar="BLOCKS",
        help="sign and exchange each party group's private state root every this many "
        f"blocks (default {DEFAULT_COMMITMENT_INTERVAL}, or the config's; 0: off)",
    )
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="text",
        help="text, or json: one JSON object per line (time, level, logger, message, extras)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        metavar="PORT",
        help="serve GET /metrics (Prometheus) on this port (0: any free one); "
        "default: the config's metrics_port, else off",
    )
    parser.add_argument(
        "--metrics-host",
        default=None,
        metavar="HOST",
        help="interface for /metrics (default: the config's metrics_host, else 127.0.0.1)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="quorum-node",
        description="A Quorum-style permissioned Ethereum node on py-evm.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    commands = parser.add_subparsers(dest="command", required=True)

    dev = commands.add_parser("dev", help="a one-node development chain with a funded account")
    _add_rpc_options(dev, DEV_APIS)
    dev.add_argument(
        "--dev-account-key",
        type=_hex_key,
        action="append",
        default=[],
        metavar="HEX",
        help="also hold and fund this key (repeatable)",
    )
    dev.add_argument("--chain-id", type=int, default=DEFAULT_CHAIN_ID)
    dev.add_argument("--tm-url", help="Q2T URL of a transaction manager (enables privateFor)")
    dev.add_argument(
        "--tm-tls",
        nargs=3,
        type=Path,
        metavar=("CERT", "KEY", "CA"),
        help="client certificate, key and CA for a manager whose Q2T requires mutual TLS",
    )

    run = commands.add_parser("run", help="run a node from a config file, or from flags")
    _add_rpc_options(run, DEFAULT_APIS)
    run.add_argument(
        "--config",
        type=Path,
        help="node config: node.toml as qnet writes it (TOML; *.json read as JSON)",
    )
    run.add_argument("--genesis", type=Path, help="genesis.json (geth format)")
    run.add_argument("--password-file", type=Path, help="password of the keystore files")
    run.add_argument(
        "--consensus",
        default="solo",
        choices=["solo"],
        help="solo here; raft takes a --config with the cluster",
    )
    run.add_argument(
        "--wipe",
        action="store_true",
        help="delete the chain database and the Raft state (never the node key, keystore, "
        "password or config) before starting: the node resyncs from its peers and "
        "replays its private transactions",
    )

    verify = commands.add_parser(
        "verify-recovery",
        help="after a --wipe and resync: make a commitment height happen and compare each "
        "party group's root with the other members' signed roots (what qnet recover checks)",
    )
    verify.add_argument("--rpc", required=True, metavar="URL", help="the recovered node")
    verify.add_argument(
        "--tm-key", required=True, metavar="BASE64", help="this participant's manager key"
    )
    verify.add_argument(
        "--account",
        metavar="ADDRESS",
        help="an account the node holds, to send the empty transfer from "
        "(default: its first); its private transactions with no payload are unrecoverable",
    )
    verify.add_argument("--json", action="store_true", help="print the result as JSON")

    account = commands.add_parser("account", help="manage keystore accounts")
    account_commands = account.add_subparsers(dest="account_command", required=True)
    new = account_commands.add_parser("new", help="create a keystore account")
    new.add_argument("--datadir", type=Path, required=True)
    new.add_argument("--password-file", type=Path, required=True)
    return parser


def _rpc_config(args: argparse.Namespace) -> RpcConfig:
    return RpcConfig(
        host=args.http_host,
        http_port=args.http_port,
        ws_port=args.ws_port,
        max_body_bytes=args.max_body_bytes,
        max_batch_size=args.rpc_batch_request_limit,
        max_batch_response_bytes=args.rpc_batch_response_max_size,
        http_vhosts=args.http_vhosts,
        http_corsdomain=args.http_corsdomain,
        ws_origins=args.ws_origins,
        http_api=parse_apis(args.http_api, "--http-api"),
        ws_api=parse_apis(args.ws_api, "--ws-api"),
        allow_insecure_unlock=args.allow_insecure_unlock,
        ws_max_queued_bytes=args.ws_max_queued_bytes,
    )


def _prepare_dev(args: argparse.Namespace, datadir: Path) -> NodeConfig:
    """Create the dev account and genesis on first start; reuse them afterwards."""
    genesis_path = datadir / "genesis.json"
    keystore = datadir / "keystore"
    if not genesis_path.exists():
        secret_directory(datadir)  # holds the dev account's keystore
        dev_key = secrets.token_bytes(32)
        write_keystore_file(keystore, dev_key, "")
        funded = [dev_key, *args.dev_account_key]
        alloc = {
            Address(keys.PrivateKey(key).public_key.to_canonical_address()): GenesisAccount(
                balance=DEV_BALANCE
            )
            for key in funded
        }
        Genesis(chain_id=args.chain_id, alloc=alloc).save(genesis_path)
    else:
        genesis = Genesis.load(genesis_path)
        store = AccountStore()
        for key in args.dev_account_key:
            held = store.add_key(key)
            if held.address not in genesis.alloc:
                print(
                    f"warning: 0x{held.address.hex()} was not funded at genesis; "
                    "fund it with a transfer from the dev account",
                    file=sys.stderr,
                )
    return NodeConfig(
        datadir=datadir,
        genesis_file=genesis_path,
        rpc=_rpc_config(args),
        block_period_ms=args.block_period,
        extra_keys=tuple(args.dev_account_key),
        tm_url=args.tm_url,
        tm_tls=ManagerTls(*args.tm_tls) if args.tm_tls else None,
    )


def _verify_recovery(args: argparse.Namespace) -> int:
    try:
        return _check_recovered(args)
    except RuntimeError as exc:  # a JSON-RPC error from the node
        raise ConfigError(f"{args.rpc}: {exc}") from None


def _check_recovered(args: argparse.Namespace) -> int:
    account = args.account
    if account is None:
        held = rpc_call(args.rpc, "eth_accounts")
        if not held:
            raise ConfigError(f"{args.rpc} holds no account: pass --account")
        account = held[0]
    report = check_recovery(args.rpc, {account.lower()}, args.tm_key)
    if args.json:
        print(json.dumps(report.to_json()))
    else:
        report.print_table({})
    return 0 if report.ok else 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(
        getattr(args, "log_level", "INFO"), getattr(args, "log_format", "text"), sys.stderr
    )
    temporary: Path | None = None
    try:
        if args.command == "verify-recovery":
            return _verify_recovery(args)
        if args.command == "account":
            password = args.password_file.read_text().rstrip("\r\n")
            path = write_keystore_file(args.datadir / "keystore", secrets.token_bytes(32), password)
            print(f"0x{path.name.rsplit('--', 1)[-1]}")
            return 0
        if args.command == "dev":
            datadir = args.datadir
            if datadir is None:
                temporary = datadir = Path(tempfile.mkdtemp(prefix="quorum-dev-"))
            config = _prepare_dev(args, datadir)
        elif args.config is not None:
            config = load_node_config(args.config)
        else:
            if args.datadir is None or args.genesis is None:
                raise ConfigError("run needs --config, or --datadir and --genesis")
            config = NodeConfig(
                datadir=args.datadir,
                genesis_file=args.genesis,
                rpc=_rpc_config(args),
                consensus=args.consensus,
                block_period_ms=args.block_period,
                password_file=args.password_file,
            )
        if args.commitment_interval is not None:
            config = replace(config, commitment_interval=args.commitment_interval)
        if args.metrics_port is not None:
            config = replace(config, metrics_port=args.metrics_port)
        if args.metrics_host is not None:
            config = replace(config, metrics_host=args.metrics_host)
        if getattr(args, "wipe", False):
            deleted = wipe_chain_state(config)
            print(f"quorum-node: wiped {', '.join(map(str, deleted)) or 'nothing'}", flush=True)
        asyncio.run(serve(config))
        return 0
    except ConfigError as exc:
        print(f"quorum-node: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"quorum-node: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
