"""``qnet explorer --dir DIR [--port P] [--host H] [--abi FILE]... [--detach]``.

In the foreground it serves until interrupted. With ``--detach`` (what ``qnet demo
--keep`` uses) it starts itself as a background process, as qnet starts nodes: pid file
``DIR/explorer/explorer.pid``, log ``DIR/explorer/explorer.log``; ``qnet down`` stops it.
The URL is printed once the server listens, and written to ``DIR/explorer/url``.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from aiohttp import web

from quorum_node.explorer.abi import AbiFileError, AbiRegistry
from quorum_node.explorer.network import NetworkFileError, load_participants
from quorum_node.explorer.server import build_app

DESCRIPTION = (
    "Serve a read-only web explorer of the network DIR/network.json describes: each "
    "participant's view of blocks, transactions, contracts and party groups, side by side."
)
START_TIMEOUT = 30.0


class ExplorerStartError(RuntimeError):
    """The detached explorer did not start listening; the message holds its log's tail."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", type=Path, required=True, help="the network's folder")
    parser.add_argument("--port", type=int, default=0, help="port (default: any free port)")
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface (default 127.0.0.1, loopback only)"
    )
    parser.add_argument(
        "--abi",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="more ABIs to decode with (a JSON ABI, or an artifact with 'abi'); repeatable",
    )
    parser.add_argument(
        "--detach", action="store_true", help="run in the background; `qnet down` stops it"
    )
    parser.add_argument("--url-file", type=Path, help=argparse.SUPPRESS)


def state_dir(directory: Path) -> Path:
    return directory / "explorer"


def pid_path(directory: Path) -> Path:
    """Where ``qnet down`` finds the detached explorer (``DIR/explorer/explorer.pid``)."""
    return state_dir(directory) / "explorer.pid"


def url_path(directory: Path) -> Path:
    return state_dir(directory) / "url"


def run(args: argparse.Namespace) -> int:
    """Handler of ``qnet explorer``; returns the exit status."""
    try:
        participants = load_participants(args.dir)
        abis = AbiRegistry.load(args.abi)
    except (NetworkFileError, AbiFileError) as exc:
        print(f"qnet explorer: {exc}", file=sys.stderr)
        return 2
    if not _is_loopback(args.host):
        print(
            f"qnet explorer: serving on {args.host}: anyone who reaches it sees what every "
            "participant's node answers, private data included",
            file=sys.stderr,
        )
    if args.detach:
        try:
            url = start_detached(args.dir, args.host, args.port, args.abi)
        except ExplorerStartError as exc:
            print(f"qnet explorer: {exc}", file=sys.stderr)
            return 1
        print(f"explorer: {url}  (stop it with: qnet down --dir {args.dir})")
        return 0
    asyncio.run(serve(build_app(participants, abis), args.host, args.port, args.url_file))
    return 0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def serve(app: web.Application, host: str, port: int, url_file: Path | None) -> None:
    """Serve until SIGTERM or SIGINT; print the URL (and write it to ``url_file``) once
    listening."""
    # open live feeds (server-sent events) never end by themselves: do not wait for them
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in str(bound_host) else bound_host
        url = f"http://{shown}:{bound_port}/"
        print(f"explorer: {url}", flush=True)
        if url_file is not None:
            temporary = url_file.with_suffix(".tmp")
            temporary.write_text(url + "\n")
            temporary.replace(url_file)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        if url_file is not None:
            url_file.unlink(missing_ok=True)
        await runner.cleanup()


def _running(directory: Path) -> int | None:
    try:
        pid = int(pid_path(directory).read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def start_detached(directory: Path, host: str, port: int, abi_files: list[Path]) -> str:
    """Start the explorer in its own session (unless it runs already) and return its URL
    once it listens."""
    folder = state_dir(directory)
    folder.mkdir(mode=0o700, exist_ok=True)
    if _running(directory) is not None and url_path(directory).exists():
        return url_path(directory).read_text().strip()
    url_path(directory).unlink(missing_ok=True)
    command = [
        sys.executable,
        "-m",
        "quorum_node.explorer",
        "--dir",
        str(directory),
        "--host",
        host,
        "--port",
        str(port),
        "--url-file",
        str(url_path(directory)),
    ]
    for path in abi_files:
        command += ["--abi", str(path)]
    log_path = folder / "explorer.log"
    with open(log_path, "ab") as log:
        # S603: this Python running the explorer with qnet's own arguments.
        process = subprocess.Popen(  # noqa: S603
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    pid_path(directory).write_text(f"{process.pid}\n")
    deadline = time.monotonic() + START_TIMEOUT
    while not url_path(directory).exists():
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                process.kill()
            process.wait()
            pid_path(directory).unlink(missing_ok=True)
            raise ExplorerStartError(
                f"the explorer did not start; {log_path}:\n{log_path.read_text()[-1500:]}"
            )
        time.sleep(0.05)
    return url_path(directory).read_text().strip()


def main(argv: list[str] | None = None) -> int:
    """``python -m quorum_node.explorer``: the same options as ``qnet explorer``."""
    parser = argparse.ArgumentParser(prog="qnet explorer", description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))
