"""``--wipe`` on both sides: the manager's store and the node's chain database and Raft
state go; keys, keystore, passwords and config stay; a folder that does not look like
theirs is refused with nothing deleted."""

from __future__ import annotations

import sqlite3
import tomllib
from pathlib import Path

import pytest

from quorum_node import cli as quorum_node_cli
from quorum_node.config import RAFT_FORMAT_FILE, NodeConfig
from quorum_node.consensus.raft_state import RAFT_FORMAT
from quorum_node.errors import ConfigError
from quorum_node.wipe import wipe_chain_state
from tx_manager import cli as tx_manager_cli
from tx_manager.config import parse_config
from tx_manager.errors import ManagerConfigError
from tx_manager.wipe import wipe_store


def sqlite_file(path: Path) -> Path:
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE t (x)")
    connection.commit()
    connection.close()
    return path


def _toml(path: Path) -> dict[str, object]:
    return tomllib.loads(path.read_text())


def files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# -- the manager ---------------------------------------------------------------------


def manager_folder(tmp_path: Path, storage_path: str = "tm.db") -> tuple[Path, Path]:
    for name in ("tm.pub", "tm.key", "password", "ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text(name)
    config = tmp_path / "tm.toml"
    config.write_text(
        f'storage_path = "{storage_path}"\n'
        '[[keys]]\npublic = "tm.pub"\nprivate = "tm.key"\npassword_file = "password"\n'
        '[tls]\nmode = "ca"\ncert = "cert.pem"\nkey = "key.pem"\nca = "ca.pem"\n'
    )
    return tmp_path, config


def test_wipe_store_deletes_the_database_and_its_companions_only(tmp_path: Path) -> None:
    folder, config_path = manager_folder(tmp_path)
    sqlite_file(folder / "tm.db")
    (folder / "tm.db-wal").write_bytes(b"wal")
    (folder / "tm.db-shm").write_bytes(b"shm")
    config = parse_config(_toml(config_path), folder)

    deleted = wipe_store(config, config_path)

    assert sorted(p.name for p in deleted) == ["tm.db", "tm.db-shm", "tm.db-wal"]
    assert files(folder) == [
        "ca.pem",
        "cert.pem",
        "key.pem",
        "password",
        "tm.key",
        "tm.pub",
        "tm.toml",
    ]
    assert wipe_store(config, config_path) == []  # nothing left: nothing to do


@pytest.mark.parametrize("storage_path", ["tm.key", "password", "ca.pem", "tm.toml"])
def test_wipe_store_refuses_a_key_password_tls_or_config_file(
    tmp_path: Path, storage_path: str
) -> None:
    folder, config_path = manager_folder(tmp_path, storage_path)
    config = parse_config(_toml(config_path), folder)
    before = files(folder)

    with pytest.raises(ManagerConfigError, match="refusing"):
        wipe_store(config, config_path)

    assert files(folder) == before


def test_wipe_store_refuses_a_file_that_is_not_sqlite(tmp_path: Path) -> None:
    folder, config_path = manager_folder(tmp_path, "notes.txt")
    (folder / "notes.txt").write_text("not a database")
    config = parse_config(_toml(config_path), folder)

    with pytest.raises(ManagerConfigError, match="not an SQLite database"):
        wipe_store(config, config_path)

    assert (folder / "notes.txt").exists()


# -- the node ------------------------------------------------------------------------


def node_folder(tmp_path: Path) -> NodeConfig:
    datadir = tmp_path / "node1"
    (datadir / "keystore").mkdir(parents=True)
    (datadir / "keystore" / "UTC--account").write_text("{}")
    (datadir / "nodekey").write_text("key")
    (datadir / "password").write_text("secret")
    (datadir / "config.json").write_text("{}")
    (datadir / "genesis.json").write_text("{}")
    sqlite_file(datadir / "chain.sqlite")
    (datadir / "chain.sqlite-wal").write_bytes(b"wal")
    (datadir / "raft").mkdir()
    (datadir / "raft" / "raft.journal").write_bytes(b"journal")
    (datadir / "raft" / "raft.dump").write_bytes(b"dump")
    (datadir / "raft" / RAFT_FORMAT_FILE).write_text(RAFT_FORMAT)  # as a running node marks it
    return NodeConfig(datadir=datadir, genesis_file=datadir / "genesis.json")


def test_wipe_chain_state_deletes_the_chain_and_raft_state_only(tmp_path: Path) -> None:
    config = node_folder(tmp_path)

    deleted = wipe_chain_state(config)

    assert sorted(p.name for p in deleted) == ["chain.sqlite", "chain.sqlite-wal", "raft"]
    assert files(config.datadir) == [
        "config.json",
        "genesis.json",
        "keystore",
        "keystore/UTC--account",
        "nodekey",
        "password",
    ]
    assert wipe_chain_state(config) == []


def test_wipe_chain_state_refuses_a_raft_folder_with_other_files(tmp_path: Path) -> None:
    config = node_folder(tmp_path)
    (config.raft_dir / "nodekey").write_text("misplaced")
    before = files(config.datadir)

    with pytest.raises(ConfigError, match="not Raft state"):
        wipe_chain_state(config)

    assert files(config.datadir) == before


def test_wipe_chain_state_refuses_a_chain_database_that_is_not_sqlite(tmp_path: Path) -> None:
    config = node_folder(tmp_path)
    config.chain_db_path.unlink()
    config.chain_db_path.write_text("something else")
    before = files(config.datadir)

    with pytest.raises(ConfigError, match="not an SQLite database"):
        wipe_chain_state(config)

    assert files(config.datadir) == before


def test_wipe_chain_state_refuses_a_missing_data_directory(tmp_path: Path) -> None:
    config = NodeConfig(datadir=tmp_path / "nowhere", genesis_file=tmp_path / "genesis.json")

    with pytest.raises(ConfigError, match="does not exist"):
        wipe_chain_state(config)


# -- the flags -----------------------------------------------------------------------


def test_tx_manager_run_wipe_refuses_before_starting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, config_path = manager_folder(tmp_path, "tm.key")
    before = files(folder)

    assert tx_manager_cli.main(["run", "--config", str(config_path), "--wipe"]) == 2

    assert "refusing" in capsys.readouterr().err
    assert files(folder) == before


def test_quorum_node_run_wipe_refuses_before_starting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = node_folder(tmp_path)
    (config.raft_dir / "notes.txt").write_text("mine")
    before = files(config.datadir)
    args = ["run", "--datadir", str(config.datadir), "--genesis", str(config.genesis_file)]

    assert quorum_node_cli.main([*args, "--wipe"]) == 2

    assert "not Raft state" in capsys.readouterr().err
    assert files(config.datadir) == before
