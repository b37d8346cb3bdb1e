"""``tx-manager run --wipe`` on real processes: the store goes, the keys stay, and the
manager recovers at start even though its config says ``recover = "never"``. While its
only peer is paused the recovery cannot end, and a payload it does not hold yet is
answered 503 ``{"recovering": true}``, never 404; once the peer answered, 404 again."""

from __future__ import annotations

import json
import os
import signal

import pytest

from tests.tx_manager.conftest import ManagerFactory, http, wait_until
from tx_manager.client import ManagerRecovering, Q2TClient

pytestmark = [pytest.mark.integration, pytest.mark.slow]

UNKNOWN = (b"\x05" * 64).hex()


def recovery(q2t: str) -> dict[str, object]:
    status, body, _ = http("GET", f"{q2t}/recovery")
    assert status == 200, body
    return dict(json.loads(body))


async def test_run_wipe_recovers_and_answers_recovering_meanwhile(
    managers: ManagerFactory,
) -> None:
    b = managers.start("b", peer_timeout=30.0)
    a = managers.start("a", [b], peer_timeout=30.0)
    wait_until(lambda: a.knows_key(b.public_key) and b.knows_key(a.public_key), 20, "a and b")
    async with Q2TClient(b.q2t) as client_b:
        hashes = [
            (await client_b.send(b"for a %d" % i, None, [a.public_key])).key for i in range(3)
        ]
    a.stop()
    assert b.process is not None
    os.kill(b.process.pid, signal.SIGSTOP)
    try:
        a.start("--wipe")  # recover = "never" in its config: --wipe implies --recover
        assert sorted(p.name for p in a.directory.glob("a.*")) == ["a.key", "a.pub"]
        assert recovery(a.q2t) == {"recovering": True, "received": 0}
        status, body, _ = http("GET", f"{a.q2t}/transaction/{UNKNOWN}")
        assert status == 503 and json.loads(body)["recovering"] is True, body
        async with Q2TClient(a.q2t) as client_a:
            with pytest.raises(ManagerRecovering):
                await client_a.receive_many(hashes)
    finally:
        os.kill(b.process.pid, signal.SIGCONT)

    wait_until(lambda: recovery(a.q2t)["recovering"] is False, 40, "a's recovery")
    assert recovery(a.q2t) == {"recovering": False, "received": 3}
    async with Q2TClient(a.q2t) as client_a:
        found = await client_a.receive_many(hashes)
        assert [r.payload if r else None for r in found] == [b"for a %d" % i for i in range(3)]
        assert await client_a.receive(bytes.fromhex(UNKNOWN)) is None  # 404 again
    assert "wiped" in a.log_path.read_text()
