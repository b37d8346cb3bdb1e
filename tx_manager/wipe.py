"""``tx-manager run --wipe``: delete the manager's store before it starts, so that it
recovers every payload from its peers.

Only the SQLite database (``storage_path``) and its WAL and shared-memory files are
deleted; key files, password files, TLS files and the config are never touched.
"""

from __future__ import annotations

from pathlib import Path

from quorum_shared.sqlite_files import delete_database, is_sqlite
from tx_manager.config import Config
from tx_manager.errors import ManagerConfigError


def wipe_store(config: Config, config_path: Path | None = None) -> list[Path]:
    """Delete the store ``config`` names; returns what was deleted (nothing if the
    store does not exist).

    Refuses (``ManagerConfigError``, nothing deleted) for a PostgreSQL store, and when
    ``storage_path`` is a key,
    password, TLS or config file, or is not an SQLite database. Run it only on a
    stopped manager.
    """
    if config.store_url is not None:
        raise ManagerConfigError(
            "--wipe: the store is in PostgreSQL, which other managers of this party may "
            "share; refusing (drop or truncate its tables yourself if that is meant)"
        )
    store = config.storage_path
    protected = {
        path.resolve()
        for path in (*_key_files(config), *_tls_files(config), config_path)
        if path is not None
    }
    if store.resolve() in protected:
        raise ManagerConfigError(
            f"--wipe: storage_path {store} is a key, password, TLS or config file; refusing"
        )
    if store.exists() and not is_sqlite(store):
        raise ManagerConfigError(
            f"--wipe: storage_path {store} is not an SQLite database; refusing to delete it"
        )
    deleted = delete_database(store)
    return deleted


def _key_files(config: Config) -> list[Path | None]:
    return [p for key in config.keys for p in (key.public_key, key.private_key, key.password_file)]


def _tls_files(config: Config) -> list[Path | None]:
    files: list[Path | None] = [config.tls.cert, config.tls.key, config.tls.ca]
    if config.q2t_tls is not None:
        files += [config.q2t_tls.cert, config.q2t_tls.key, config.q2t_tls.ca]
    return files
