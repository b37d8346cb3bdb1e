"""``raft_conf``: what the Raft timing settings rely on.

pysyncobj's thread wakes every ``autoTickPeriod`` to check its timers. The node keeps
that period long (idle wakes were half of an idle network's CPU) on two premises tested
here: a submitted command wakes the thread at once instead of waiting for a tick, and
heartbeats, which go out at a tick, still arrive well inside the election timeout.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pysyncobj import syncobj

from quorum_node.consensus.raft_state import raft_conf

pytestmark = pytest.mark.timeout(20)


def test_a_submitted_command_does_not_wait_for_a_tick(tmp_path: Path) -> None:
    conf = raft_conf("127.0.0.1:1", tmp_path)
    # pysyncobj notifies its poller through a pipe on every command exactly when
    # batching is off and the pipe notifier could be imported (SyncObj._applyCommand).
    assert conf.appendEntriesUseBatch is False
    assert syncobj.PIPE_NOTIFIER_ENABLED


@pytest.mark.parametrize("election_timeout", [0.1, 0.4, 2.0])
def test_heartbeats_stay_inside_the_election_timeout(
    tmp_path: Path, election_timeout: float
) -> None:
    conf = raft_conf("127.0.0.1:1", tmp_path, election_timeout=election_timeout)
    # A heartbeat is sent at the first tick after its period ran out.
    latest_heartbeat_gap = conf.appendEntriesPeriod + conf.autoTickPeriod
    assert 3 * latest_heartbeat_gap < conf.raftMinTimeout
    assert conf.autoTickPeriod <= 0.025
