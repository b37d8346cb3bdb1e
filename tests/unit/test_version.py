"""One version everywhere: the three commands' ``--version`` and the node's
``web3_clientVersion`` give the installed distribution's version (the manager's
``GET /version`` is checked in tests/tx_manager/test_api.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from quorum_node.cli import main as quorum_node_main
from quorum_node.config import NodeConfig
from quorum_node.qnet.cli import main as qnet_main
from quorum_shared.version import package_version
from tx_manager.cli import main as tx_manager_main


@pytest.mark.parametrize(
    ("prog", "main"),
    [("quorum-node", quorum_node_main), ("tx-manager", tx_manager_main), ("qnet", qnet_main)],
)
def test_every_command_prints_the_package_version(
    prog: str, main: Callable[[list[str]], int], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"{prog} {package_version()}\n"


def test_the_node_reports_the_package_version_as_its_client_version() -> None:
    config = NodeConfig(datadir=Path("unused"), genesis_file=Path("unused"))
    assert config.client_version == f"quorum-py/v{package_version()}/python"
