"""The soak test (``tests/soak/soak.py``): load with faults at random, then every check.

``make test`` runs a short soak (``SOAK_MINUTES`` unset: 2 minutes of load); ``make
soak`` a long one (``SOAK_MINUTES``, default 20). ``SOAK_SEED`` repeats a run's
choices; the seed is printed first and named in any failure.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from tests.soak.soak import soak

SOAK_SECONDS = float(os.environ.get("SOAK_MINUTES") or 2) * 60


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(SOAK_SECONDS + 900)
def test_nothing_acknowledged_is_lost_under_faults(tmp_path: Path) -> None:
    seed = int(os.environ.get("SOAK_SEED") or random.SystemRandom().randrange(2**32))
    try:
        summary = soak(tmp_path / "net", SOAK_SECONDS, seed, print)
    except AssertionError as failure:
        raise AssertionError(f"soak seed {seed} (SOAK_SEED={seed} repeats it): {failure}") from None
    print(json.dumps(summary, indent=2))
    assert summary["acknowledged"] > 0
