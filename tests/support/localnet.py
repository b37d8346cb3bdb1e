"""Run local managers as subprocesses: for tests and benchmarks (not shipped).

Each manager gets its own folder with an unlocked key pair and a JSON config
on OS-chosen ports; ``start`` waits (with a deadline) for the ports file the
manager writes once it listens. A restart reuses the ports first chosen, so
peers' routes stay valid. Not for production: keys are unlocked.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.waiting import wait_until
from tx_manager.keyfile import read_public_key, write_keypair
from tx_manager.payload import b64encode


def http(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, bytes, dict[str, str]]:
    """One blocking HTTP request; error statuses are returned, not raised."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def post_json(url: str, obj: Any) -> tuple[int, Any]:
    status, body, _ = http(
        "POST", url, json.dumps(obj).encode(), {"Content-Type": "application/json"}
    )
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode()


@dataclass
class Manager:
    """One manager process: its folder, config, key, and the URLs it reported."""

    name: str
    directory: Path
    public_key: str
    config: dict[str, Any]
    process: subprocess.Popen[bytes] | None = None
    q2t: str = ""
    p2p: str = ""

    @property
    def config_path(self) -> Path:
        return self.directory / "tm.json"

    @property
    def ports_file(self) -> Path:
        return self.directory / "ports.json"

    @property
    def db_path(self) -> Path:
        return self.directory / "tm.db"

    @property
    def log_path(self) -> Path:
        return self.directory / "tm.log"

    def write_config(self) -> None:
        self.config_path.write_text(json.dumps(self.config, indent=2))

    def start(self, *extra_args: str, timeout: float = 30.0) -> Manager:
        self.ports_file.unlink(missing_ok=True)
        self.write_config()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tx_manager.cli", "run", "--config", str(self.config_path)]
                + list(extra_args),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
            )
        wait_until(self._ready, timeout, f"{self.name} to listen")
        for api, url in (("q2t", self.q2t), ("p2p", self.p2p)):
            if not url.startswith("unix:"):
                self.config[api]["port"] = int(url.rsplit(":", 1)[1])
        return self

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"{self.name} exited: {self.log_path.read_text()[-2000:]}")
        if not self.ports_file.exists():
            return False
        ports = json.loads(self.ports_file.read_text())
        self.q2t, self.p2p = ports["q2t"], ports["p2p"]
        return True

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit within 10 s."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def kill9(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def knows_key(self, key: str) -> bool:
        """True once this manager routes ``key`` (plain-HTTP P2P only)."""
        status, body, _ = http("GET", self.p2p + "/partyinfo")
        return status == 200 and any(k["key"] == key for k in json.loads(body)["keys"])

    def send(self, payload: bytes, to: list[str], **fields: Any) -> tuple[int, Any]:
        body = {"payload": b64encode(payload), "to": to, **fields}
        return post_json(self.q2t + "/send", body)


class ManagerFactory:
    """Creates managers under ``root``; ``stop_all`` stops every one it created."""

    def __init__(self, root: Path, discovery_interval: float = 0.3) -> None:
        self.root = root
        self.discovery_interval = discovery_interval
        self.managers: list[Manager] = []

    def create(self, name: str, peers: Sequence[Manager] = (), **settings: Any) -> Manager:
        directory = self.root / name
        directory.mkdir(parents=True)
        pub, key = write_keypair(directory, name, None)
        config: dict[str, Any] = {
            "keys": [{"public": pub.name, "private": key.name}],
            "peers": [p.p2p for p in peers],
            "q2t": {"host": "127.0.0.1", "port": 0},
            "p2p": {"host": "127.0.0.1", "port": 0},
            "discovery_interval": self.discovery_interval,
            "peer_timeout": 5.0,
            "recover": "never",
        }
        config.update(settings)
        manager = Manager(name, directory, b64encode(read_public_key(pub)), config)
        self.managers.append(manager)
        return manager

    def start(self, name: str, peers: Sequence[Manager] = (), **settings: Any) -> Manager:
        return self.create(name, peers, **settings).start()

    def stop_all(self) -> None:
        for manager in self.managers:
            manager.stop()
