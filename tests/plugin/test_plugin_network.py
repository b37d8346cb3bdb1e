"""The plugin on real networks, each pytester run a separate pytest session: private
deployment for two of three parties and what each one sees, a failing view's table
with the logs attached, fresh accounts per test, the README's example verbatim, shapes
sharing or not sharing a network, and no process left behind, also after errors."""

from __future__ import annotations

import shutil

import pytest

from tests.plugin.conftest import BUILD, REPOSITORY, processes_running_from, run_plugin

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(300)]

PRIVATE_TESTS = """
import pytest
from quorum_node.testing import NOT_A_PARTY, PrivateTransactionFailed
from recorder import record

STORAGE = "contracts/build/SimpleStorage.json"


def test_deploy_for_two_of_three(quorum_network):
    storage = quorum_network.deploy(STORAGE, args=[42], sender="BankA", parties=["BankB"])
    quorum_network.assert_views(
        storage, "get", {"BankA": 42, "BankB": 42, "BankC": NOT_A_PARTY}
    )
    bank_b = quorum_network.party("BankB")
    bank_b.transact(bank_b.contract(storage).functions.set(43), parties=["BankA"])
    quorum_network.assert_views(
        storage.address,
        lambda contract: contract.functions.get().call() + 1,
        {"BankA": 44, "BankB": 44, "BankC": NOT_A_PARTY},
        abi=storage.abi,
    )
    record(test="deploy", directory=str(quorum_network.directory),
           address=quorum_network.party("BankA").address)


def test_each_test_has_fresh_funded_accounts(quorum_network):
    bank_a = quorum_network.party("BankA")
    assert bank_a.w3.eth.get_balance(bank_a.address) > 0
    assert bank_a.w3.eth.get_transaction_count(bank_a.address) == 0
    record(test="fresh", directory=str(quorum_network.directory), address=bank_a.address)


def test_a_reverting_creation_fails_clearly(quorum_network):
    with pytest.raises(PrivateTransactionFailed, match="from BankA failed: status 0"):
        quorum_network.deploy(
            abi=[], bytecode="0x60006000fd", sender="BankA", parties=["BankB"], gas=100_000
        )


def test_views_differ(quorum_network):
    storage = quorum_network.deploy(STORAGE, args=[42], sender="BankA", parties=["BankB"])
    quorum_network.assert_views(storage, "get", {"BankA": 41, "BankB": 42, "BankC": 42})


def test_error_after_using_the_network(quorum_network):
    quorum_network.party("BankC")
    raise RuntimeError("the test broke")
"""

OTHER_MODULE = """
from recorder import record


def test_shares_the_session_network(quorum_network):
    record(test="other module", directory=str(quorum_network.directory))
"""


def _readme_example() -> str:
    section = (REPOSITORY / "README.md").read_text().split("## Testing your contracts", 1)[1]
    return section.split("```python\n", 1)[1].split("```\n", 1)[0]


def test_private_views_failures_logs_and_teardown(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(BUILD, pytester.path / "contracts" / "build")
    pytester.makepyfile(
        test_private=PRIVATE_TESTS, test_other=OTHER_MODULE, test_readme=_readme_example()
    )
    run = run_plugin(pytester, monkeypatch, ["quorum_network_names = BankA,BankB,BankC"])
    output = run.output

    run.result.assert_outcomes(passed=5, failed=2)
    # the README's DvP example passed, and every module shared one network
    assert "test_readme.py::test_private_dvp PASSED" in output or "test_readme.py ." in output
    directories = run.directories()
    assert len(directories) == 1, directories
    # fresh accounts: the two tests' BankA accounts differ
    addresses = [record["address"] for record in run.records if "address" in record]
    assert len(addresses) == 2 and addresses[0] != addresses[1]
    # the failing view's table
    assert "ViewsDiffer: views of get() at 0x" in output
    assert "BankA  41        42           DIFFERS" in output
    assert "BankB  42        42           ok" in output
    assert "BankC  42        NOT_A_PARTY  DIFFERS" in output
    # both failing tests' reports carry the network's log tails
    assert output.count("quorum_network BankA node.log (last 40 lines)") == 2
    assert output.count("quorum_network BankC tm.log (last 40 lines)") == 2
    assert "RuntimeError: the test broke" in output
    # and nothing of the network runs any more
    (directory,) = directories
    assert processes_running_from(directory) == []
    assert list((pytester.path / directory).glob("*/*.pid")) == []


SHAPE_TESTS = """
import pytest
from recorder import record


def test_default_shape(quorum_network):
    record(test="default", directory=str(quorum_network.directory), names=quorum_network.names)


def test_default_shape_again(quorum_network):
    record(test="default", directory=str(quorum_network.directory), names=quorum_network.names)


@pytest.mark.quorum_network(names=["Alpha", "Beta"], consensus="raft")
def test_marked_shape(quorum_network):
    record(test="marked", directory=str(quorum_network.directory), names=quorum_network.names)


@pytest.mark.quorum_network(names=["Alpha", "Beta"], consensus="raft")
def test_marked_shape_again(quorum_network):
    record(test="marked", directory=str(quorum_network.directory), names=quorum_network.names)
"""


def test_each_shape_starts_once_per_session(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_shapes=SHAPE_TESTS)
    run = run_plugin(
        pytester, monkeypatch, ["quorum_network_nodes = 1", "quorum_network_consensus = solo"]
    )
    run.result.assert_outcomes(passed=4)
    by_test: dict[str, set[str]] = {}
    for record in run.records:
        by_test.setdefault(record["test"], set()).add(record["directory"])
    assert len(by_test["default"]) == 1 and len(by_test["marked"]) == 1
    assert by_test["default"] != by_test["marked"]
    assert {tuple(record["names"]) for record in run.records} == {("node1",), ("Alpha", "Beta")}
    for directory in run.directories():
        assert processes_running_from(directory) == []


MODULE_TESTS = """
from recorder import record


def test_one(quorum_network):
    record(directory=str(quorum_network.directory))


def test_two(quorum_network):
    record(directory=str(quorum_network.directory))
"""


def test_module_scope_starts_a_network_per_module(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_first=MODULE_TESTS, test_second=MODULE_TESTS)
    run = run_plugin(
        pytester,
        monkeypatch,
        [
            "quorum_network_nodes = 1",
            "quorum_network_consensus = solo",
            "quorum_network_scope = module",
        ],
    )
    run.result.assert_outcomes(passed=4)
    directories = [record["directory"] for record in run.records]
    assert directories[0] == directories[1] != directories[2] == directories[3]
    for directory in set(directories):
        assert processes_running_from(directory) == []
