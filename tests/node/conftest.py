"""Fixtures that run real node processes (see tests/support/node_process.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.node_process import NodeProcess


@pytest.fixture(scope="module")
def dev_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """One dev node shared by a test module (tests must not depend on each other's state)."""
    node = NodeProcess(tmp_path_factory.mktemp("node") / "data").start()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture
def fresh_node(tmp_path: Path) -> Iterator[NodeProcess]:
    node = NodeProcess(tmp_path / "data")
    try:
        yield node.start()
    finally:
        node.stop()
