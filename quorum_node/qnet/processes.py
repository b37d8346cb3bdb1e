"""Starting, stopping and checking a participant's processes (node, and transaction
manager once configured), each detached in its own session with a pid file and a log
file under ``DIR/<name>/``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from quorum_node.errors import ConfigError
from quorum_node.qnet.layout import (
    NetworkLayout,
    ParticipantLayout,
    node_config_path,
    tm_config_path,
)

KINDS = ("node", "tm")


def rpc_call(url: str, method: str, params: list[Any] | None = None, timeout: float = 5.0) -> Any:
    body = json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}
    ).encode()
    # S310: qnet's own http:// URLs of the network's nodes (layout.json).
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        reply = json.loads(response.read())
    if "error" in reply:
        raise RuntimeError(reply["error"].get("message", "error"))
    return reply["result"]


def pid_path(directory: Path, name: str, kind: str) -> Path:
    return directory / name / f"{kind}.pid"


def log_path(directory: Path, name: str, kind: str) -> Path:
    return directory / name / f"{kind}.log"


def running_pid(directory: Path, name: str, kind: str) -> int | None:
    path = pid_path(directory, name, kind)
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    # A zombie child of ours counts as gone.
    try:
        status = Path(f"/proc/{pid}/stat").read_text().split()[2]
        if status == "Z":
            return None
    except OSError:
        pass
    return pid


def command_for(
    directory: Path, participant: ParticipantLayout, kind: str, flags: Sequence[str] = ()
) -> list[str]:
    return [*_base_command(directory, participant, kind), *flags]


def _base_command(directory: Path, participant: ParticipantLayout, kind: str) -> list[str]:
    bundle = directory / participant.name
    if kind == "node":
        module, config = "quorum_node.cli", node_config_path(bundle)
    else:
        module, config = "tx_manager.cli", tm_config_path(bundle)
    return [sys.executable, "-m", module, "run", "--config", str(config)]


def start_process(
    directory: Path, participant: ParticipantLayout, kind: str, flags: Sequence[str] = ()
) -> int:
    """Start one process (``flags`` added to its command line) unless it runs already."""
    existing = running_pid(directory, participant.name, kind)
    if existing is not None:
        return existing
    log = open(log_path(directory, participant.name, kind), "ab")  # noqa: SIM115 - child owns it
    # S603: this Python running quorum-node or tx-manager with qnet's own arguments.
    process = subprocess.Popen(  # noqa: S603
        command_for(directory, participant, kind, flags),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    log.close()
    pid_path(directory, participant.name, kind).write_text(f"{process.pid}\n")
    return process.pid


def stop_process(
    directory: Path, name: str, kind: str, kill: bool = False, timeout: float = 20
) -> bool:
    pid = running_pid(directory, name, kind)
    if pid is None:
        return False
    os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while running_pid(directory, name, kind) is not None:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
        time.sleep(0.05)
    pid_path(directory, name, kind).unlink(missing_ok=True)
    return True


def wait_for(condition: Callable[[], bool], timeout: float, what: str, logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            tail = "\n".join(f"--- {p}:\n{p.read_text()[-1500:]}" for p in logs if p.exists())
            raise ConfigError(f"timed out waiting for {what}\n{tail}")
        time.sleep(0.1)


def node_answers(layout: NetworkLayout, participant: ParticipantLayout) -> bool:
    try:
        rpc_call(f"http://{layout.host}:{participant.http_port}", "eth_chainId", timeout=1)
        return True
    except (OSError, RuntimeError, ValueError):
        return False


def tm_answers(layout: NetworkLayout, participant: ParticipantLayout) -> bool:
    try:
        with urllib.request.urlopen(
            f"http://{layout.host}:{participant.tm_q2t_port}/upcheck", timeout=1
        ) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def leader_elected(layout: NetworkLayout, participant: ParticipantLayout) -> bool:
    try:
        return bool(
            rpc_call(f"http://{layout.host}:{participant.http_port}", "raft_leader", timeout=1)
        )
    except (OSError, RuntimeError, ValueError):
        return False
