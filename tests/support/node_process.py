"""Running real ``quorum-node`` processes in tests: start on OS-chosen ports, wait until
they answer, stop or kill -9 them, restart them on the same data directory.

Every wait polls a condition until a deadline; there are no fixed sleeps.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.waiting import wait_until

__all__ = ["TEST_KEYS", "WEB3_TEST_KEY", "NodeProcess", "rpc", "wait_until"]

# Fixed development keys so tests can sign locally; the node also creates its own dev key.
TEST_KEYS = [bytes([index + 1]) * 32 for index in range(8)]
# The key of web3.py's keyfile account 0xdC544d1AA88Ff8bbd2F2AeC754B1F1e99e1812fd, which its
# integration tests send from (web3.py tests/integration/generate_fixtures/common.py).
WEB3_TEST_KEY = bytes.fromhex("58d23b55bc9cdce1f18c2500f40ff4ab7245df9a89505e9b1fa4851f623d241d")


def rpc(url: str, method: str, params: list[Any] | None = None, timeout: float = 30.0) -> Any:
    """One JSON-RPC call; returns the whole response object (result or error)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []})
    request = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


@dataclass
class NodeProcess:
    """A ``quorum-node dev`` process and its data directory."""

    datadir: Path
    extra_args: list[str] = field(default_factory=list)
    keys: list[bytes] = field(default_factory=lambda: list(TEST_KEYS))
    process: subprocess.Popen[bytes] | None = None
    http_url: str = ""
    ws_url: str = ""

    @property
    def log_path(self) -> Path:
        return self.datadir.parent / f"{self.datadir.name}.log"

    def start(self, timeout: float = 60.0) -> NodeProcess:
        endpoints = self.datadir / "endpoints.json"
        if endpoints.exists():
            endpoints.unlink()
        command = [
            sys.executable,
            "-m",
            "quorum_node.cli",
            "dev",
            "--datadir",
            str(self.datadir),
            "--http-port",
            "0",
            "--ws-port",
            "0",
            *[arg for key in self.keys for arg in ("--dev-account-key", key.hex())],
            *self.extra_args,
        ]
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        self.process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()

        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(
                    f"node exited with {self.process.returncode}:\n"
                    f"{self.log_path.read_text()[-3000:]}"
                )
            if not endpoints.exists():
                return False
            urls = json.loads(endpoints.read_text())
            self.http_url, self.ws_url = urls["http"], urls["ws"]
            try:
                return "result" in rpc(self.http_url, "eth_chainId", timeout=2)
            except OSError:
                return False

        wait_until(ready, timeout, "the node to answer")
        return self

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """kill -9: no chance to flush or close anything."""
        if self.process is None:
            return
        self.process.kill()
        self.process.wait()
        self.process = None
