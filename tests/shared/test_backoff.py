"""``Backoff``: waits double from ``first`` up to ``cap``, each shortened by at most the
jitter, and start over after ``reset``."""

from __future__ import annotations

import pytest

from quorum_shared.backoff import Backoff


def test_waits_double_up_to_the_cap_within_the_jitter() -> None:
    backoff = Backoff(0.1, 1.0, jitter=0.25)
    nominal = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    waits = [backoff.next() for _ in nominal]
    for wait, expected in zip(waits, nominal, strict=True):
        assert expected * 0.75 <= wait <= expected
    assert backoff.failures == len(nominal)
    backoff.reset()
    assert backoff.failures == 0 and backoff.next() <= 0.1


def test_jitter_spreads_the_waits() -> None:
    waits = {round(Backoff(1.0, 1.0, jitter=0.5).next(), 6) for _ in range(50)}
    assert len(waits) > 10 and min(waits) >= 0.5


@pytest.mark.parametrize(
    "arguments",
    [
        {"first": 0, "cap": 1},
        {"first": 2, "cap": 1},
        {"first": 1, "cap": 2, "factor": 0.5},
        {"first": 1, "cap": 2, "jitter": 1.0},
    ],
    ids=str,
)
def test_nonsense_is_refused(arguments: dict[str, float]) -> None:
    first, cap = arguments.pop("first"), arguments.pop("cap")
    with pytest.raises(ValueError):
        Backoff(first, cap, **arguments)
