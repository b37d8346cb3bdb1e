"""The plugin's parts that need no running network: the entry point, shapes from
markers and ini options, a failed start, the views table, artifacts."""

from __future__ import annotations

import json
import tomllib

import pytest

from quorum_node.testing import NOT_A_PARTY, NetworkShape, NetworkShapeError, load_artifact
from quorum_node.testing.parties import _Raised, _views_table
from tests.plugin.conftest import BUILD, REPOSITORY, processes_running_from, run_plugin

#: pytest's own fixture for running pytest on test files written by the test
pytest_plugins = ["pytester"]


def test_the_entry_point_is_declared_in_pyproject() -> None:
    project = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["pytest11"] == {"quorum_network": "quorum_node.testing.plugin"}


@pytest.mark.parametrize(
    ("nodes", "names", "consensus", "expected"),
    [
        (None, None, "raft", NetworkShape(3, None, "raft")),
        (None, ["A", "B"], "raft", NetworkShape(2, ("A", "B"), "raft")),
        (1, None, "solo", NetworkShape(1, None, "solo")),
    ],
)
def test_shapes(
    nodes: int | None, names: list[str] | None, consensus: str, expected: NetworkShape
) -> None:
    assert NetworkShape.from_options(nodes, names, consensus) == expected


@pytest.mark.parametrize(
    ("nodes", "names", "consensus", "message"),
    [
        (3, ["A", "B"], "raft", "2 names"),
        (None, ["A", "A"], "raft", "names repeat"),
        (0, None, "raft", "at least 1"),
        (2, None, "pbft", "consensus must be one of"),
    ],
)
def test_shapes_refused(
    nodes: int | None, names: list[str] | None, consensus: str, message: str
) -> None:
    with pytest.raises(NetworkShapeError, match=message):
        NetworkShape.from_options(nodes, names, consensus)


def test_the_views_table_shows_expected_and_seen_per_party() -> None:
    rows = [
        ("BankA", 41, 42, False),
        ("BankB", 42, 42, True),
        ("BankC", NOT_A_PARTY, _Raised(ValueError("execution reverted")), False),
    ]
    assert _views_table("views of get()", rows).splitlines() == [
        "views of get()",
        "party  expected     seen",
        "-----  -----------  -------------------------------------  -------",
        "BankA  41           42                                     DIFFERS",
        "BankB  42           42                                     ok",
        "BankC  NOT_A_PARTY  raised ValueError: execution reverted  DIFFERS",
    ]


def test_artifacts_load_from_a_path_or_a_dict() -> None:
    from_path = load_artifact(BUILD / "SimpleStorage.json")
    from_dict = load_artifact(json.loads((BUILD / "SimpleStorage.json").read_text()))
    assert from_path["abi"] == from_dict["abi"] and from_path["bytecode"] == from_dict["bytecode"]
    standard_json = {"abi": [], "bytecode": {"object": "0x6000"}}
    assert load_artifact(standard_json)["bytecode"] == "0x6000"


def test_a_shape_qnet_refuses_fails_each_test_clearly_and_starts_nothing(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        test_refused="""
        import pytest
        from recorder import record

        @pytest.mark.quorum_network(nodes=3, consensus="solo")
        def test_first(quorum_network):
            pass

        @pytest.mark.quorum_network(nodes=3, consensus="solo")
        def test_second_fails_without_a_second_start(quorum_network):
            pass

        @pytest.mark.quorum_network(nodes=2, names=["A"])
        def test_names_do_not_match(quorum_network):
            pass

        def test_without_the_network():
            record(ran="yes")
        """
    )
    run = run_plugin(pytester, monkeypatch, [])
    run.result.assert_outcomes(passed=1, errors=3)
    # Each error section names its own reason. (The short summary repeats them, cut to the
    # terminal's width, so counting occurrences depends on the terminal.)
    run.result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_first*",
            "qnet: solo orders blocks on one node*",
            "*ERROR at setup of test_second_fails_without_a_second_start*",
            "qnet: solo orders blocks on one node*",
            "*ERROR at setup of test_names_do_not_match*",
            "quorum_network: 1 names ['A'] for 2 nodes",
        ]
    )
    assert "Traceback" not in run.output  # the reason, not the plugin's stack
    assert processes_running_from(str(pytester.path)) == []


def test_the_declared_entry_point_loads_the_plugin(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pyproject's ``pytest11`` entry point, as an installed package's metadata would carry
    it, is enough for pytest to load the plugin: no ``-p``, no conftest."""
    entry_points = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["project"][
        "entry-points"
    ]["pytest11"]
    metadata = pytester.path / "site" / "quorum_py_entry_point_check-0.dist-info"
    metadata.mkdir(parents=True)
    (metadata / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: quorum-py-entry-point-check\nVersion: 0\n"
    )
    lines = [f"{name} = {module}" for name, module in entry_points.items()]
    (metadata / "entry_points.txt").write_text("[pytest11]\n" + "\n".join(lines) + "\n")
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    monkeypatch.setenv("PYTHONPATH", f"{pytester.path / 'site'}:{REPOSITORY}")
    markers = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--markers")
    markers.stdout.fnmatch_lines(["@pytest.mark.quorum_network(nodes=3, names=*"])
    fixtures = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--fixtures")
    fixtures.stdout.fnmatch_lines(["*fixtures defined from quorum_node.testing.plugin*"])
    fixtures.stdout.fnmatch_lines(["quorum_network -- *quorum_node/testing/plugin.py:*"])
