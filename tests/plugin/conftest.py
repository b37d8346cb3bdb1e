"""Running the ``quorum_network`` plugin inside pytest's own ``pytester``: each run is a
separate pytest process with the plugin loaded by ``-p`` (the package installed in
development may not carry the ``pytest11`` entry point yet), this worktree first on
``PYTHONPATH``, and every run's networks gone before the test asserts on them."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
BUILD = REPOSITORY / "quorum_node" / "contracts"
PLUGIN_ARGUMENTS = ["-p", "no:quorum_network", "-p", "quorum_node.testing.plugin"]
INI_LINES = [
    "[pytest]",
    "asyncio_default_fixture_loop_scope = function",
    "filterwarnings = error",
    "timeout = 150",
]

#: What the inner tests write down: one JSON object a line (test, directory, address...).
RECORDER = """
import json
from pathlib import Path


def record(**fields):
    with (Path(__file__).parent / "record.jsonl").open("a") as out:
        out.write(json.dumps(fields) + "\\n")
"""


@dataclass
class PluginRun:
    result: pytest.RunResult
    records: list[dict[str, str]]

    @property
    def output(self) -> str:
        return self.result.stdout.str()

    def directories(self) -> set[str]:
        return {record["directory"] for record in self.records if "directory" in record}


def run_plugin(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ini: list[str], *arguments: str
) -> PluginRun:
    """Run pytest on ``pytester.path`` with the plugin and return what the tests recorded."""
    pytester.makeini("\n".join([*INI_LINES, *ini]))
    pytester.makepyfile(recorder=RECORDER)
    environment = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPOSITORY), environment])))
    result = pytester.runpytest_subprocess(*PLUGIN_ARGUMENTS, "-p", "no:cacheprovider", *arguments)
    record_file = pytester.path / "record.jsonl"
    records = (
        [json.loads(line) for line in record_file.read_text().splitlines()]
        if record_file.exists()
        else []
    )
    return PluginRun(result, records)


def processes_running_from(directory: str) -> list[int]:
    """Every process whose command line names ``directory`` (a network's nodes and managers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command_line = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if directory.encode() in command_line:
            found.append(int(entry.name))
    return found
