"""Networks the pytest plugin starts: ``qnet up`` in a temporary directory, ``qnet down``
whatever happens, and the log tails a failing test's report shows.

qnet runs as ``python -m quorum_node.qnet.cli`` in a child process: it starts exactly
what ``qnet up`` starts (each node and manager detached in its own session, with a pid
file), and the test session holds no ``Popen`` of a process that outlives the call
(which would be a ResourceWarning, an error where warnings are errors).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quorum_node.qnet import processes
from quorum_node.qnet.cli import READY_TIMEOUT

QNET = [sys.executable, "-m", "quorum_node.qnet.cli"]
#: ``up`` waits up to READY_TIMEOUT for each process and again for a Raft leader.
QNET_TIMEOUT = 3 * READY_TIMEOUT
CONSENSUS_CHOICES = ("raft", "solo")
LOG_TAIL_LINES = 40


class QuorumNetworkError(Exception):
    """Root of the plugin's errors."""


class NetworkShapeError(QuorumNetworkError):
    """The marker or ini options describe a network qnet cannot start."""


class NetworkStartError(QuorumNetworkError):
    """``qnet up`` failed; the message carries qnet's output (with its log tails)."""

    def __init__(self, shape: NetworkShape, directory: Path, output: str) -> None:
        super().__init__(f"qnet up ({shape.label}) in {directory} failed:\n{output}")
        self.shape = shape
        self.directory = directory


@dataclass(frozen=True)
class NetworkShape:
    """What a network looks like: tests asking for equal shapes share one network."""

    nodes: int
    names: tuple[str, ...] | None
    consensus: str

    @classmethod
    def from_options(
        cls, nodes: int | None, names: list[str] | tuple[str, ...] | None, consensus: str
    ) -> NetworkShape:
        cleaned = tuple(name.strip() for name in names if name.strip()) if names else None
        if nodes is None:
            nodes = len(cleaned) if cleaned else 3
        if nodes < 1:
            raise NetworkShapeError(f"quorum_network: nodes must be at least 1, not {nodes}")
        if cleaned is not None and len(cleaned) != nodes:
            raise NetworkShapeError(
                f"quorum_network: {len(cleaned)} names {list(cleaned)} for {nodes} nodes"
            )
        if cleaned is not None and len(set(cleaned)) != len(cleaned):
            raise NetworkShapeError(f"quorum_network: names repeat: {list(cleaned)}")
        if consensus not in CONSENSUS_CHOICES:
            raise NetworkShapeError(
                f"quorum_network: consensus must be one of {CONSENSUS_CHOICES}, not {consensus!r}"
            )
        return cls(nodes, cleaned, consensus)

    @property
    def label(self) -> str:
        who = ",".join(self.names) if self.names else f"node1..node{self.nodes}"
        return f"{self.nodes} nodes {who}, {self.consensus}"

    def up_arguments(self, directory: Path) -> list[str]:
        arguments = ["up", "--dir", str(directory), "--nodes", str(self.nodes)]
        arguments += ["--consensus", self.consensus]
        if self.names:
            arguments += ["--names", ",".join(self.names)]
        return arguments


def _run_qnet(arguments: list[str]) -> tuple[int, str]:
    """``qnet ARGUMENTS``: its exit code and what it printed."""
    try:
        # S603: this Python running qnet with the plugin's own arguments.
        completed = subprocess.run(  # noqa: S603
            [*QNET, *arguments],
            capture_output=True,
            text=True,
            timeout=QNET_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as timeout:
        return 1, f"qnet {arguments[0]} did not finish within {QNET_TIMEOUT:.0f} s: {timeout}"
    return completed.returncode, completed.stdout + completed.stderr


@dataclass
class RunningNetwork:
    """A network ``qnet up`` started in ``directory``."""

    shape: NetworkShape
    directory: Path
    description: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def start(cls, shape: NetworkShape, directory: Path) -> RunningNetwork:
        """``qnet up``; on failure everything started so far is stopped before raising."""
        network = cls(shape, directory)
        code, output = _run_qnet(shape.up_arguments(directory))
        if code != 0:
            network.down()
            raise NetworkStartError(shape, directory, output)
        network.description = json.loads((directory / "network.json").read_text())
        return network

    @property
    def participants(self) -> list[dict[str, Any]]:
        return list(self.description.get("nodes", []))

    @property
    def names(self) -> list[str]:
        return [str(entry["name"]) for entry in self.participants]

    def participant(self, name: str) -> dict[str, Any]:
        for entry in self.participants:
            if entry["name"] == name:
                return entry
        raise KeyError(f"no participant {name!r} in this network (it has {self.names})")

    def down(self) -> None:
        """``qnet down``; any process its pid files still name afterwards (qnet failed,
        or a process ignored SIGTERM) is killed, so none outlives the network."""
        if (self.directory / "layout.json").exists():
            _run_qnet(["down", "--dir", str(self.directory)])
        self._kill_leftovers()

    def running_pids(self) -> list[int]:
        """The processes of this network still running (empty once it is down)."""
        pids = []
        for pid_file in sorted(self.directory.glob("*/*.pid")):
            pid = processes.running_pid(self.directory, pid_file.parent.name, pid_file.stem)
            if pid is not None:
                pids.append(pid)
        return pids

    def _kill_leftovers(self) -> None:
        for pid in self.running_pids():
            with contextlib.suppress(OSError):
                command_line = Path(f"/proc/{pid}/cmdline").read_bytes()
                if str(self.directory).encode() in command_line:
                    os.kill(pid, signal.SIGKILL)
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(pid, 0)

    def log_tails(self, lines: int = LOG_TAIL_LINES) -> list[tuple[str, str]]:
        return log_tails(self.directory, lines)


def log_tails(directory: Path, lines: int = LOG_TAIL_LINES) -> list[tuple[str, str]]:
    """(title, text) of the last ``lines`` of each participant's node and manager log."""
    sections = []
    for log in sorted(directory.glob("*/*.log")):
        text = log.read_text(errors="replace").splitlines()[-lines:]
        title = f"quorum_network {log.parent.name} {log.name} (last {lines} lines)"
        sections.append((title, "\n".join(text)))
    return sections


class NetworkPool:
    """The networks of one scope (the session, or a module), one per shape, started on
    first use and all stopped by ``close``. A shape whose start failed fails again at
    once, without a second 90-second wait."""

    def __init__(self, make_directory: Callable[[], Path]) -> None:
        self._make_directory = make_directory
        self._networks: dict[NetworkShape, RunningNetwork] = {}
        self._failures: dict[NetworkShape, NetworkStartError] = {}

    def get(self, shape: NetworkShape) -> RunningNetwork:
        if shape in self._failures:
            raise self._failures[shape]
        if shape not in self._networks:
            try:
                self._networks[shape] = RunningNetwork.start(shape, self._make_directory())
            except NetworkStartError as failure:
                self._failures[shape] = failure
                raise
        return self._networks[shape]

    def close(self) -> None:
        errors: list[BaseException] = []
        for network in self._networks.values():
            try:
                network.down()
            except BaseException as exc:  # stop the others first, then report
                errors.append(exc)
        self._networks.clear()
        if errors:
            raise errors[0]
