"""``settle_startup_heap``: what a daemon holds when it has started leaves the cyclic
collector's walks, and the young generation is collected less often."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from quorum_shared.heap import THRESHOLDS, settle_startup_heap


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_collector")
def test_startup_objects_leave_the_full_collections_walk() -> None:
    long_lived = [{"startup": index} for index in range(50_000)]
    gc.collect()
    assert len(gc.get_objects(generation=2)) >= len(long_lived)

    frozen = settle_startup_heap()

    assert frozen >= len(long_lived)
    assert gc.get_freeze_count() == frozen
    # A full collection now walks only what was made after start-up.
    assert len(gc.get_objects(generation=2)) < len(long_lived)
    assert gc.get_threshold() == THRESHOLDS
    assert THRESHOLDS[0] > 700  # CPython's default young threshold


@pytest.mark.usefixtures("restored_collector")
def test_garbage_made_after_startup_is_still_collected() -> None:
    settle_startup_heap()

    class Node:
        other: object = None

    first, second = Node(), Node()
    first.other, second.other = second, first  # a cycle: reference counting cannot free it
    del first, second

    assert gc.collect() >= 2
