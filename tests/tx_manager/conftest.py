"""Fixtures that run real ``tx-manager`` processes on OS-chosen ports.

Every process a fixture starts is stopped by that fixture, on failure too.
Waits poll a condition until a deadline; there are no fixed sleeps.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tx_manager.keyfile import read_public_key, write_keypair
from tx_manager.payload import b64encode

DISCOVERY_INTERVAL = 0.3


def wait_until(condition: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def http(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, bytes, dict[str, str]]:
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
    extra_args: list[str] = field(default_factory=list)

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

    def start(self, *extra: str) -> Manager:
        self.ports_file.unlink(missing_ok=True)
        self.write_config()
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tx_manager.cli",
                "run",
                "--config",
                str(self.config_path),
                *extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.directory,
        )
        log.close()

        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited: {self.log_path.read_text()[-2000:]}")
            if not self.ports_file.exists():
                return False
            ports = json.loads(self.ports_file.read_text())
            self.q2t, self.p2p = ports["q2t"], ports["p2p"]
            return True

        wait_until(ready, 30, f"{self.name} to listen")
        # Later restarts reuse the same ports, so peers' routes stay valid.
        self.config["q2t"]["port"] = int(self.q2t.rsplit(":", 1)[1])
        if not self.config["p2p"].get("unix_socket"):
            self.config["p2p"]["port"] = int(self.p2p.rsplit(":", 1)[1])
        return self

    def stop(self) -> None:
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
        status, body, _ = http("GET", self.p2p + "/partyinfo")
        return status == 200 and any(k["key"] == key for k in json.loads(body)["keys"])

    def envelope_count(self) -> int:
        connection = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True)
        try:
            return int(connection.execute("SELECT COUNT(*) FROM envelopes").fetchone()[0])
        finally:
            connection.close()

    def send(self, payload: bytes, to: list[str], **fields: Any) -> tuple[int, Any]:
        body = {"payload": b64encode(payload), "to": to, **fields}
        return post_json(self.q2t + "/send", body)


class ManagerFactory:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.managers: list[Manager] = []

    def create(self, name: str, peers: list[Manager] = (), **settings: Any) -> Manager:  # type: ignore[assignment]
        directory = self.root / name
        directory.mkdir(parents=True)
        pub, key = write_keypair(directory, name, None)
        config: dict[str, Any] = {
            "keys": [{"public": pub.name, "private": key.name}],
            "peers": [p.p2p for p in peers],
            "q2t": {"host": "127.0.0.1", "port": 0},
            "p2p": {"host": "127.0.0.1", "port": 0},
            "discovery_interval": DISCOVERY_INTERVAL,
            "peer_timeout": 5.0,
            "recover": "never",
        }
        config.update(settings)
        manager = Manager(name, directory, b64encode(read_public_key(pub)), config)
        self.managers.append(manager)
        return manager

    def start(self, name: str, peers: list[Manager] = (), **settings: Any) -> Manager:  # type: ignore[assignment]
        return self.create(name, peers, **settings).start()

    def stop_all(self) -> None:
        for manager in self.managers:
            manager.stop()


@pytest.fixture
def managers(tmp_path: Path) -> Iterator[ManagerFactory]:
    factory = ManagerFactory(tmp_path)
    try:
        yield factory
    finally:
        factory.stop_all()


@dataclass
class Trio:
    a: Manager
    b: Manager
    c: Manager
    factory: ManagerFactory


@pytest.fixture(scope="module")
def trio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trio]:
    """A knows only B, B knows only C: A must discover C through B."""
    factory = ManagerFactory(tmp_path_factory.mktemp("trio"))
    try:
        c = factory.start("c", max_body_bytes=64 * 1024)
        b = factory.start("b", [c], max_body_bytes=64 * 1024)
        a = factory.start("a", [b], max_body_bytes=64 * 1024)
        for manager in (a, b, c):
            for other in (a, b, c):
                if other is not manager:
                    wait_until(
                        lambda m=manager, o=other: m.knows_key(o.public_key),
                        20,
                        f"{manager.name} to learn {other.name}'s key",
                    )
        yield Trio(a, b, c, factory)
    finally:
        factory.stop_all()


def env_without(*names: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in names}
