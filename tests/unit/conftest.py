"""Fixtures of the in-process tests: nodes on in-memory chains, closed after each test
(their chain threads stopped) even when the test fails."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from quorum_node.node import Node
from tests.support.inproc import new_node

NodeFactory = Callable[..., Node]


@pytest.fixture
async def make_node() -> AsyncIterator[NodeFactory]:
    """``make_node(chain=None, private_blocks=None, held_keys=())``: a node whose chain
    thread is shut down when the test ends."""
    made: list[Node] = []

    def make(*args: Any, **kwargs: Any) -> Node:
        node = new_node(*args, **kwargs)
        made.append(node)
        return node

    yield make
    for node in made:
        await node.close()
