"""``quorum-node run --wipe``: forget the chain so that the node resyncs from its peers.

Deletes the chain database (blocks, public and private state, records) and the Raft
state, so that the node rejoins its cluster as a blank member, fetches every block
again and replays its private transactions through its manager. The node key, the
keystore, the password files, the genesis and the config are never touched.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from quorum_node.config import RAFT_FORMAT_FILE, NodeConfig
from quorum_node.errors import ConfigError
from quorum_shared.sqlite_files import delete_database, is_sqlite

RAFT_FILE_PREFIX = "raft."  # pysyncobj's journal and full dump (consensus.raft_state)


def wipe_chain_state(config: NodeConfig) -> list[Path]:
    """Delete the chain database and the Raft state of the node ``config`` describes;
    returns what was deleted (nothing if there was nothing to delete).

    Refuses (``ConfigError``, nothing deleted) when the folder does not look like a
    node's: the data directory is missing, the chain database is not an SQLite file, or
    the Raft folder holds anything but pysyncobj's files. Run it only on a stopped node.
    """
    datadir = config.datadir
    if not datadir.is_dir():
        raise ConfigError(f"--wipe: data directory {datadir} does not exist")
    database = config.chain_db_path
    if database.exists() and not is_sqlite(database):
        raise ConfigError(f"--wipe: {database} is not an SQLite database; refusing to delete it")
    raft_dir = config.raft_dir
    if raft_dir.exists():
        if not raft_dir.is_dir() or raft_dir.is_symlink():
            raise ConfigError(f"--wipe: {raft_dir} is not a folder; refusing to delete it")
        strangers = [p.name for p in raft_dir.iterdir() if not _is_raft_file(p)]
        if strangers:
            raise ConfigError(
                f"--wipe: {raft_dir} holds {', '.join(sorted(strangers))}, which are not "
                "Raft state; refusing to delete it"
            )
    deleted = delete_database(database)
    if raft_dir.exists():
        shutil.rmtree(raft_dir)
        deleted.append(raft_dir)
    return deleted


def _is_raft_file(path: Path) -> bool:
    """pysyncobj's journal and snapshots, and the format mark ``raft_state`` writes."""
    named = path.name.startswith(RAFT_FILE_PREFIX) or path.name == RAFT_FORMAT_FILE
    return path.is_file() and not path.is_symlink() and named
