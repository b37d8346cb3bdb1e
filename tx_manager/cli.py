"""``tx-manager``: keygen, run, resend.

Expected failures (missing key file, wrong password, port in use, unreadable
config) print one line on stderr and exit with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from dataclasses import replace
from pathlib import Path

from quorum_shared.heap import settle_startup_heap
from quorum_shared.logs import LOG_FORMATS, configure_logging
from quorum_shared.version import VERSION
from tx_manager.client import Q2TClient
from tx_manager.config import Config, ListenConfig, load_config, read_password
from tx_manager.errors import ManagerConfigError, TxManagerError
from tx_manager.keyfile import Argon2Params, write_keypair
from tx_manager.server import ManagerServer, url_host
from tx_manager.tls import q2t_client_context
from tx_manager.wipe import wipe_store

EXIT_USAGE = 2

log = logging.getLogger("tx_manager")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tx-manager", description="quorum-py transaction manager")
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    commands = parser.add_subparsers(dest="command", required=True)

    keygen = commands.add_parser("keygen", help="generate NAME.pub and NAME.key in DIR")
    keygen.add_argument("--name", required=True)
    keygen.add_argument("--out", required=True, type=Path)
    locked = keygen.add_mutually_exclusive_group()
    locked.add_argument("--password-file", type=Path, help="lock the key with this file's password")
    locked.add_argument("--password-env", help="lock the key with this variable's value")
    keygen.add_argument("--kdf-memory-kib", type=int, default=Argon2Params.memory_kib)
    keygen.add_argument("--kdf-iterations", type=int, default=Argon2Params.iterations)

    run = commands.add_parser("run", help="run the manager")
    run.add_argument("--config", required=True, type=Path)
    recover = run.add_mutually_exclusive_group()
    recover.add_argument("--recover", dest="recover", action="store_const", const=True)
    recover.add_argument("--no-recover", dest="recover", action="store_const", const=False)
    run.add_argument(
        "--wipe",
        action="store_true",
        help="delete the store (the SQLite files; never keys or config) before starting, "
        "then recover every payload from the peers (unless --no-recover)",
    )
    run.add_argument("--log-level", default="INFO")
    run.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="text",
        help="text, or json: one JSON object per line (time, level, logger, message, extras)",
    )
    run.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve GET /metrics (Prometheus) on this port (0: any free one); "
        "overrides the config's [metrics] port",
    )
    run.add_argument(
        "--metrics-host",
        metavar="HOST",
        help="interface for /metrics (default: the config's, else 127.0.0.1)",
    )

    resend = commands.add_parser("resend", help="ask a running manager to recover from its peers")
    resend.add_argument("--config", required=True, type=Path)

    verify = commands.add_parser(
        "verify-disclosure",
        help="check a disclosure bundle offline against any node's JSON-RPC (docs/disclosure.md)",
    )
    verify.add_argument("--bundle", type=Path, required=True, help="the bundle (JSON)")
    verify.add_argument(
        "--key", type=Path, required=True, help="the recipient's private key file (NAME.key)"
    )
    verify.add_argument("--password-file", type=Path, help="the key's password, if locked")
    verify.add_argument("--rpc", required=True, help="any node's JSON-RPC URL")
    verify.add_argument(
        "--abi",
        type=Path,
        action="append",
        default=[],
        help="an ABI, or a solc artifact holding one, to decode calls with (repeatable)",
    )
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def _keygen(args: argparse.Namespace) -> int:
    params = Argon2Params(iterations=args.kdf_iterations, memory_kib=args.kdf_memory_kib)
    pub_path, key_path = write_keypair(
        args.out, args.name, read_password(args.password_file, args.password_env), params
    )
    print(f"wrote {pub_path} and {key_path}")
    return 0


def _with_metrics(config: Config, port: int | None, host: str | None) -> Config:
    """The config with the command line's metrics flags applied."""
    if port is None and host is None:
        return config
    current = config.metrics or ListenConfig()
    if port is None and config.metrics is None:
        raise ManagerConfigError("--metrics-host needs --metrics-port or a [metrics] port")
    if port is not None and not 0 <= port <= 65535:
        raise ManagerConfigError(f"--metrics-port {port} is out of range")
    metrics = ListenConfig(host=host or current.host, port=current.port if port is None else port)
    return replace(config, metrics=metrics)


async def _run(
    config_path: Path,
    recover: bool | None,
    wipe: bool,
    metrics_port: int | None = None,
    metrics_host: str | None = None,
) -> None:
    config = _with_metrics(load_config(config_path), metrics_port, metrics_host)
    if wipe:
        deleted = wipe_store(config, config_path)
        print(f"tx-manager: wiped {', '.join(map(str, deleted)) or 'nothing'}", flush=True)
        if recover is None:
            recover = True
    server = ManagerServer(config, recover=recover)
    urls = await server.start()
    print(f"tx-manager Q2T listening on {urls.q2t}", flush=True)
    print(f"tx-manager P2P listening on {urls.p2p}", flush=True)
    if urls.metrics is not None:
        print(f"tx-manager metrics on {urls.metrics}", flush=True)
    log.info("started", extra=urls.to_json())
    settle_startup_heap()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()


async def _resend(config_path: Path) -> int:
    config = load_config(config_path)
    if config.q2t.unix_socket is not None:
        url = f"unix:{config.q2t.unix_socket}"
    elif config.q2t.port == 0:
        if config.ports_file is None:
            raise ManagerConfigError(
                "q2t.port is 0 and no ports_file says where the manager listens"
            )
        try:
            url = json.loads(config.ports_file.read_text())["q2t"]
        except (OSError, ValueError, KeyError) as exc:
            raise ManagerConfigError(
                f"cannot read {config.ports_file}: is the manager running?"
            ) from exc
    else:
        scheme = "https" if config.q2t_tls is not None else "http"
        url = f"{scheme}://{url_host(config.q2t.host)}:{config.q2t.port}"
    tls = config.q2t_tls
    # With [q2t.tls], the CLI presents the manager's own certificate as its client
    # certificate: it must allow client authentication (or carry no key usage limits).
    context = None if tls is None else q2t_client_context(tls.cert, tls.key, tls.ca)
    async with Q2TClient(url, ssl_context=context) as client:
        received = await client.recover()
    print(f"recovered {received} envelopes from peers")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "keygen":
            return _keygen(args)
        if args.command == "resend":
            return asyncio.run(_resend(args.config))
        if args.command == "verify-disclosure":
            # An offline tool sharing this command, not part of the daemon: it replays
            # private transactions with the node's EVM, so it is loaded only here.
            from quorum_node.disclosure.verify import run as verify_disclosure

            return verify_disclosure(args)
        configure_logging(args.log_level, args.log_format)
        asyncio.run(
            _run(args.config, args.recover, args.wipe, args.metrics_port, args.metrics_host)
        )
        return 0
    except TxManagerError as exc:
        print(f"tx-manager: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
