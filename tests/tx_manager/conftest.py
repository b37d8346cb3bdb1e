"""Fixtures that run real ``tx-manager`` processes on OS-chosen ports.

Every process a fixture starts is stopped by that fixture, on failure too.
Waits poll a condition until a deadline; there are no fixed sleeps.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.localnet import Manager, ManagerFactory, http, post_json
from tests.support.postgres import PrivateServer
from tests.support.waiting import wait_until
from tx_manager.pg_store import PostgresStore
from tx_manager.store import SqliteStore, Store

__all__ = ["Manager", "ManagerFactory", "http", "post_json", "wait_until", "envelope_count"]

DISCOVERY_INTERVAL = 0.3


def envelope_count(manager: Manager) -> int:
    """Envelopes in a manager's store, read directly (WAL allows a concurrent reader)."""
    connection = sqlite3.connect(f"file:{manager.db_path}?mode=ro", uri=True)
    try:
        return int(connection.execute("SELECT COUNT(*) FROM envelopes").fetchone()[0])
    finally:
        connection.close()


@pytest.fixture
def managers(tmp_path: Path) -> Iterator[ManagerFactory]:
    factory = ManagerFactory(tmp_path, DISCOVERY_INTERVAL)
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
    factory = ManagerFactory(tmp_path_factory.mktemp("trio"), DISCOVERY_INTERVAL)
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


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PrivateServer]:
    """One private PostgreSQL for the session; skips where it cannot start."""
    reason = PrivateServer.unavailable()
    if reason is not None:
        pytest.skip(reason)
    try:
        server = PrivateServer.start()
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot start PostgreSQL: {exc}")
    try:
        yield server
    finally:
        server.stop()


StoreOpener = Callable[[], Store]


@pytest.fixture(params=["sqlite", "postgresql"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreOpener:
    """Opens a store of one backend at one place (each call: the same database again),
    so that every contract test runs against both backends."""
    if request.param == "sqlite":
        return lambda: SqliteStore(tmp_path / "tm.db")
    server: PrivateServer = request.getfixturevalue("postgres_server")
    url = server.create_database()
    return lambda: PostgresStore(url)
