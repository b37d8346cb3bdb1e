"""``ThrottledLog``: the first occurrence at once, then one line per interval with a
count, per kind of event; kinds apart; a forgotten kind starts over."""

from __future__ import annotations

import logging

import pytest

from quorum_shared import log_throttle
from quorum_shared.log_throttle import ThrottledLog


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def throttled(clock: Clock) -> ThrottledLog:
    return ThrottledLog(logging.getLogger("test.throttle"), interval=10.0, clock=clock)


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "test.throttle"]


def test_one_line_per_interval_with_what_was_held_back(
    throttled: ThrottledLog, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    assert throttled.warning("down", "peer %s is down", "A")
    for _ in range(1_000):
        clock.now += 0.001
        assert not throttled.warning("down", "peer %s is down", "A")
    clock.now += 10
    assert throttled.warning("down", "peer %s is down", "A")
    assert lines(caplog) == [
        "peer A is down",
        "peer A is down (1000 more like this in the last 11s)",
    ]
    assert caplog.records[0].levelno == logging.WARNING
    assert caplog.records[0].filename == "test_log_throttle.py"  # the caller's line


def test_kinds_are_apart_and_forget_starts_over(
    throttled: ThrottledLog, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    throttled.info("a", "first a")
    throttled.info("b", "first b")
    throttled.info("a", "second a")
    throttled.forget("a")
    throttled.info("a", "third a")
    assert lines(caplog) == ["first a", "first b", "third a"]


def test_the_table_of_kinds_is_bounded(
    throttled: ThrottledLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(log_throttle, "MAX_KEYS", 8)
    for address in range(100):
        throttled.info(("refused", address), "refused")
    assert len(throttled._seen) == 8  # noqa: SLF001
