"""The pytest plugin: a ``quorum_network`` fixture that starts a real private network
(a node and a transaction manager per participant, with qnet) for tests to use.

Shape, from the closest ``quorum_network`` marker, else the ini options::

    @pytest.mark.quorum_network(nodes=3, names=["BankA", "BankB", "BankC"], consensus="raft")

    [tool.pytest.ini_options]            # or pytest.ini / tox.ini [pytest]
    quorum_network_nodes = "3"
    quorum_network_names = "BankA,BankB,BankC"
    quorum_network_consensus = "raft"
    quorum_network_scope = "session"     # or "module"

Each shape starts once per session (or per module with ``quorum_network_scope =
module``) in a temporary directory, and is always stopped with ``qnet down`` at the end
of its scope, also when its start or a test fails. A failing test's report carries the
tail of every participant's ``node.log`` and ``tm.log``.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from quorum_node.testing.network import (
    NetworkPool,
    NetworkShape,
    NetworkShapeError,
    NetworkStartError,
    log_tails,
)
from quorum_node.testing.parties import QuorumNetwork

SCOPES = ("session", "module")
_directories_key = pytest.StashKey[list[Path]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "quorum_network_nodes",
        "quorum_network: participants (node and manager each); default: the names' count, or 3",
        default="",
    )
    parser.addini(
        "quorum_network_names",
        "quorum_network: participant names, comma-separated (default node1..nodeN)",
        default="",
    )
    parser.addini(
        "quorum_network_consensus", "quorum_network: raft (default) or solo (1 node)", default=""
    )
    parser.addini(
        "quorum_network_scope",
        "quorum_network: start each network shape once per 'session' (default) or 'module'",
        default="session",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "quorum_network(nodes=3, names=[...], consensus='raft'|'solo'): the shape of the "
        "network the quorum_network fixture gives this test (default: the ini options)",
    )


def _shape(request: pytest.FixtureRequest) -> NetworkShape:
    config = request.config
    marker = request.node.get_closest_marker("quorum_network")
    options: dict[str, Any] = dict(marker.kwargs) if marker else {}
    unknown = set(options) - {"nodes", "names", "consensus"}
    if unknown or (marker and marker.args):
        raise NetworkShapeError(
            f"quorum_network marker takes nodes=, names=, consensus= (got {marker})"
        )
    names = options.get("names")
    nodes = options.get("nodes")
    if names is None and nodes is None:
        names = [n for n in re.split(r"[,\s]+", str(config.getini("quorum_network_names"))) if n]
        nodes_text = str(config.getini("quorum_network_nodes")).strip()
        nodes = int(nodes_text) if nodes_text else None
    if isinstance(names, str):
        names = [n for n in re.split(r"[,\s]+", names) if n]
    consensus = options.get("consensus") or config.getini("quorum_network_consensus") or "raft"
    return NetworkShape.from_options(nodes, names or None, str(consensus))


def _pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetworkPool]:
    pool = NetworkPool(lambda: tmp_path_factory.mktemp("quorum_network"))
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture(scope="session")
def _quorum_network_session_pool(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[NetworkPool]:
    yield from _pool(tmp_path_factory)


@pytest.fixture(scope="module")
def _quorum_network_module_pool(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[NetworkPool]:
    yield from _pool(tmp_path_factory)


def _setup_failure(reason: str) -> BaseException:
    """What fails the test's setup with ``reason`` alone, without the plugin's stack."""
    return pytest.fail.Exception(reason, pytrace=False)


@pytest.fixture
def quorum_network(request: pytest.FixtureRequest) -> QuorumNetwork:
    """This test's view of a running network: ``party(name)`` gives each participant's
    w3 with a fresh funded account; ``deploy``, ``transact`` and ``assert_views``."""
    try:
        shape = _shape(request)
    except NetworkShapeError as problem:
        raise _setup_failure(str(problem)) from None
    scope = str(request.config.getini("quorum_network_scope")).strip() or "session"
    if scope not in SCOPES:
        raise _setup_failure(f"quorum_network_scope must be one of {SCOPES}, not {scope!r}")
    pool: NetworkPool = request.getfixturevalue(f"_quorum_network_{scope}_pool")
    directories = request.node.stash.setdefault(_directories_key, [])
    try:
        network = pool.get(shape)
    except NetworkStartError as failure:
        directories.append(failure.directory)
        raise _setup_failure(str(failure)) from None
    directories.append(network.directory)
    return QuorumNetwork(network)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failing test's report gets the tail of its network's logs."""
    report = yield
    if report.failed:
        for directory in item.stash.get(_directories_key, []):
            for title, text in log_tails(directory):
                report.sections.append((title, text))
    return report
