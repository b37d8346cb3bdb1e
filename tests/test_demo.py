"""`make demo` runs its story on a real network and shows each bank what it may see."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _row(output: str, title: str, participant: str) -> list[str]:
    """The cells of ``participant``'s row in the first table after ``title``."""
    section = output[output.index(title) :]
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if cells and cells[0] == participant:
            return cells[1:]
    raise AssertionError(f"no row for {participant} after {title!r}")


def test_demo_tells_the_story(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "quorum_node.demo", "--dir", str(tmp_path / "net")],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    output = completed.stdout
    assert completed.returncode == 0, output + completed.stderr
    assert _row(output, "What each bank reads", "BankA") == ["42"]
    assert _row(output, "What each bank reads", "BankB") == ["42"]
    assert _row(output, "What each bank reads", "BankC") == ["(not visible)"]
    assert _row(output, "After BankB sets 43", "BankA") == ["43", "1"]
    assert _row(output, "After BankB sets 43", "BankC") == ["(not visible)", "0"]
    after = "After settlement"
    assert _row(output, after, "BankA") == ["900", "100", "98500", "901500"]
    assert _row(output, after, "BankB") == ["900", "100", "98500", "901500"]
    assert _row(output, after, "BankC") == ["(not visible)"] * 4
    assert "64 bytes" in output and "0x (not a party)" in output
    audit = output[output.index("quorum_auditStatus on BankA") : output.index("== 5.")]
    assert "| BankA, BankB | agreed |" in audit
    settlement = output[output.index("The settlement, checked") :]
    assert _row(settlement, "The settlement", "key-commitment") == ["ok", ""]
    assert "decoded: settle(" in settlement
    history = output[output.index("The bank group's") :]
    assert _row(history, "The bank group's", "replay")[0] == "ok"
    assert _row(history, "The bank group's", "commitments")[0] == "ok"
    assert output.count("  verified") == 2
    assert "A copy with the settled amount changed: fails at step 'signature'" in output
    custody = output[output.index("== 6.") :]
    assert "BankC checked the state handed over by 2 members" in custody
    handed = "Bond balances after the hand-over"
    for name in ("BankA", "BankB", "BankC"):
        assert _row(custody, handed, name) == ["900", "100", "0"]
        assert _row(custody, "After BankA moves 10 bonds", name) == ["890", "100", "10"]
    assert "network stopped" in output
