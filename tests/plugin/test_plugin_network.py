"""The plugin on real networks, each pytester run a separate pytest session: private
deployment for two of three parties and what each one sees, a failing view's table
with the logs attached, fresh accounts per test, the README's example verbatim, one
network per shape per session (or per module), and no process left behind, also after
errors. One run covers most of it: each network costs about 10 s to start."""

from __future__ import annotations

import shutil

import pytest

from tests.plugin.conftest import BUILD, REPOSITORY, processes_running_from, run_plugin

#: pytest's own fixture for running pytest on test files written by the test
pytest_plugins = ["pytester"]

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(300)]

PRIVATE_TESTS = """
import pytest
from quorum_node.testing import NOT_A_PARTY, PrivateTransactionFailed
from recorder import record

STORAGE = "contracts/build/SimpleStorage.json"  # a user's own artifact path (copied below)


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

OTHER_SHAPE = """
import pytest
from recorder import record

pytestmark = pytest.mark.quorum_network(nodes=1, consensus="solo")


def test_another_shape(quorum_network):
    record(test="solo", directory=str(quorum_network.directory), names=quorum_network.names)


def test_another_shape_again(quorum_network):
    record(test="solo", directory=str(quorum_network.directory), names=quorum_network.names)
"""


def _readme_example() -> str:
    section = (REPOSITORY / "README.md").read_text().split("## Testing your contracts", 1)[1]
    return section.split("```python\n", 1)[1].split("```\n", 1)[0]


def test_private_views_shapes_failures_logs_and_teardown(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(BUILD, pytester.path / "contracts" / "build")
    pytester.makepyfile(
        test_private=PRIVATE_TESTS,
        test_other=OTHER_MODULE,
        test_readme=_readme_example(),
        test_solo=OTHER_SHAPE,
    )
    run = run_plugin(pytester, monkeypatch, ["quorum_network_names = BankA,BankB,BankC"])
    output = run.output

    run.result.assert_outcomes(passed=7, failed=2)
    assert "test_readme.py ." in output  # the README's DvP example passed
    # each shape started once: every module of the ini's shape shared one network
    directories_by_test: dict[str, set[str]] = {}
    for record in run.records:
        directories_by_test.setdefault(record["test"], set()).add(record["directory"])
    (solo_directory,) = directories_by_test.pop("solo")
    (directory,) = set.union(*directories_by_test.values())
    assert solo_directory != directory
    assert {tuple(r["names"]) for r in run.records if r["test"] == "solo"} == {("node1",)}
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
    # and nothing of either network runs any more
    for started in (directory, solo_directory):
        assert processes_running_from(started) == []
        assert list((pytester.path / started).glob("*/*.pid")) == []


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
