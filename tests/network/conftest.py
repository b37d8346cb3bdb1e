"""Fixtures that run whole ``qnet`` networks (see tests/network/harness.py).

Each fixture runs ``qnet up`` in a fresh temporary directory and always ``qnet down``
in its teardown, also when ``up`` or a test fails. Networks are module-scoped: tests of
one module share them and must leave every node running when they finish.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.network.harness import QnetNetwork, running_network


@pytest.fixture(scope="module")
def network3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QnetNetwork]:
    with running_network(tmp_path_factory.mktemp("qnet3"), 3) as network:
        yield network


@pytest.fixture(
    scope="module",
    params=[
        pytest.param(3, id="3-nodes"),
        pytest.param(4, id="4-nodes", marks=pytest.mark.slow),  # ~20 s to start on 2 cores
    ],
)
def network(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[QnetNetwork]:
    """A 3-node and then a 4-node network; every test using it runs on both."""
    size = int(request.param)
    with running_network(tmp_path_factory.mktemp(f"qnet{size}"), size) as network:
        yield network
