"""Which config files ``qnet start``/``up`` run a participant with: the bundle's TOML
files, or the JSON ones of a folder an earlier ``qnet`` wrote."""

from __future__ import annotations

from pathlib import Path

from quorum_node.qnet.layout import node_config_path, tm_config_path


def test_a_bundle_runs_from_its_toml_files(tmp_path: Path) -> None:
    (tmp_path / "node.toml").touch()
    (tmp_path / "tm.toml").touch()
    assert node_config_path(tmp_path) == tmp_path / "node.toml"
    assert tm_config_path(tmp_path) == tmp_path / "tm.toml"


def test_a_folder_from_an_earlier_qnet_runs_from_its_json_files(tmp_path: Path) -> None:
    (tmp_path / "node.json").touch()
    (tmp_path / "tm").mkdir()
    (tmp_path / "tm" / "tm.json").touch()
    assert node_config_path(tmp_path) == tmp_path / "node.json"
    assert tm_config_path(tmp_path) == tmp_path / "tm" / "tm.json"
    (tmp_path / "node.toml").touch()  # both: the TOML file wins
    assert node_config_path(tmp_path) == tmp_path / "node.toml"
