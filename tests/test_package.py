"""The wheel works anywhere: ``python -m build`` makes an sdist and, from it, a wheel;
the wheel goes into a fresh virtual environment in a temporary folder outside the
repository, and everything runs from that folder with no PYTHONPATH: the three commands'
``--version``, ``w3.quorum``, the shipped contract artifacts, ``qnet up``/``qnet down``
of two participants, and ``qnet demo --keep`` (then ``qnet down``).

The environment is made with ``python -m venv`` (no system site-packages, so nothing of
this checkout or of the test environment is visible) and ``pip install`` of the wheel
resolves the dependencies from the package index, as a user's install would (so the
test needs PyPI or a mirror). With pip's cache warm, building and installing take about
25 s and the whole module about 70 s on a 2-core machine; ``build`` installs setuptools
into its isolated build environment the same way.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.network.harness import QnetNetwork

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parent.parent
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
#: The contracts the demo deploys (and the disclosure replays): package data.
DEMO_CONTRACTS = ("SimpleStorage", "Token", "DvP")


@dataclass(frozen=True)
class Installed:
    """A virtual environment holding the wheel, and a folder outside the repository to
    run its commands from."""

    venv: Path
    workdir: Path

    @property
    def environment(self) -> dict[str, str]:
        environment = {
            key: value
            for key, value in os.environ.items()
            if key not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV")
        }
        environment["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
        environment["VIRTUAL_ENV"] = str(self.venv)
        return environment

    def run(self, command: str, *args: str, timeout: float = 150.0) -> str:
        """Run an installed command (``quorum-node``, ``python``, ...) from ``workdir``;
        its output, or an AssertionError with both streams if it fails."""
        completed = subprocess.run(
            [str(self.venv / "bin" / command), *args],
            cwd=self.workdir,
            env=self.environment,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if completed.returncode != 0:
            raise AssertionError(
                f"{command} {' '.join(args)} exited with {completed.returncode}:\n"
                f"{completed.stdout}\n{completed.stderr}"
            )
        return completed.stdout


class InstalledQnetNetwork(QnetNetwork):
    """The tests' network harness, driving the installed ``qnet`` instead of the
    checkout's (its ``down`` still SIGKILLs leftovers if ``qnet down`` fails)."""

    def __init__(self, directory: Path, installed: Installed) -> None:
        super().__init__(directory)
        self.installed = installed

    def qnet(self, *args: str, timeout: float = 150.0) -> str:
        return self.installed.run("qnet", *args, timeout=timeout)


def _run(command: list[str], cwd: Path, timeout: float) -> None:
    completed = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert completed.returncode == 0, f"{command}:\n{completed.stdout}\n{completed.stderr}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    base = tmp_path_factory.mktemp("wheel")
    assert ROOT not in base.parents, "the test folder must lie outside the repository"
    dist = base / "dist"
    _run([sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)], base, 300)
    wheel = dist / f"quorum_py-{VERSION}-py3-none-any.whl"
    assert wheel.is_file(), sorted(path.name for path in dist.iterdir())
    assert (dist / f"quorum_py-{VERSION}.tar.gz").is_file()
    shipped = set(zipfile.ZipFile(wheel).namelist())
    for name in DEMO_CONTRACTS:
        assert f"quorum_node/contracts/{name}.json" in shipped, name
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], base, 120)
    workdir = base / "work"
    workdir.mkdir()
    environment = Installed(venv, workdir)
    environment.run("python", "-m", "pip", "install", "--quiet", str(wheel), timeout=400)
    yield environment


def test_the_commands_report_the_release(installed: Installed) -> None:
    for command in ("quorum-node", "tx-manager", "qnet"):
        assert installed.run(command, "--version", timeout=60) == f"{command} {VERSION}\n"
    assert "--keep" in installed.run("quorum-demo", "--help", timeout=60)


def test_the_package_comes_from_the_environment_with_its_artifacts(
    installed: Installed,
) -> None:
    script = "\n".join(
        [
            "import sys",
            "import quorum_node, quorum_shared, tx_manager",
            "from web3 import Web3",
            "from quorum_node.contracts import artifact",
            "from quorum_node.web3_ext import attach_quorum",
            "for module in (quorum_node, quorum_shared, tx_manager):",
            "    print(module.__file__)",
            "print(hasattr(attach_quorum(Web3()), 'quorum'))",
            f"for name in {DEMO_CONTRACTS!r}:",
            "    print(name, artifact(name)['bytecode'][:2])",
        ]
    )
    lines = installed.run("python", "-c", script, timeout=60).splitlines()
    site_packages = installed.venv / "lib"
    for module_file in lines[:3]:
        assert Path(module_file).is_relative_to(site_packages), module_file
        assert not Path(module_file).is_relative_to(ROOT), module_file
    assert lines[3:] == ["True", *(f"{name} 0x" for name in DEMO_CONTRACTS)]


def test_qnet_up_and_down_of_two_participants(installed: Installed) -> None:
    network = InstalledQnetNetwork(installed.workdir / "net", installed)
    try:
        network.up(2, tx_managers=True)
        assert len(network.nodes) == 2
        status = network.status_output()
        assert status.count(" up ") >= 2, status
    finally:
        network.down()
    assert "down" in network.status_output()


def test_the_demo_runs_and_keeps_its_network(installed: Installed) -> None:
    directory = installed.workdir / "demo-net"
    network = InstalledQnetNetwork(directory, installed)
    try:
        output = installed.run("qnet", "demo", "--keep", "--dir", str(directory), timeout=300)
        assert output.count("  verified") == 2, output
        assert f"The network keeps running (stop it with: qnet down --dir {directory})" in output
        assert "BankC" in network.status_output()
        # the explorer, started detached by --keep, serves its templates from the wheel
        url = re.search(r"explorer: (http://127\.0\.0\.1:\d+/)", output)
        assert url is not None, output
        with urllib.request.urlopen(url.group(1), timeout=30) as page:
            assert "BankC" in page.read().decode()
    finally:
        network.down()
