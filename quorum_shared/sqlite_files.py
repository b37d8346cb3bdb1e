"""Recognising an SQLite database on disk, and the files that make it up, for the
``--wipe`` of the node (chain database) and of the manager (store): neither may delete
anything that is not what it expects."""

from __future__ import annotations

from pathlib import Path

SQLITE_HEADER = b"SQLite format 3\x00"
#: What SQLite keeps beside a database: the write-ahead log, its index, a rollback journal.
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def is_sqlite(path: Path) -> bool:
    """A regular file (not a link) that starts as an SQLite database does, or is empty
    (a database not written yet)."""
    if not path.is_file() or path.is_symlink():
        return False
    with path.open("rb") as file:
        header = file.read(len(SQLITE_HEADER))
    return header in (SQLITE_HEADER, b"")


def delete_database(path: Path) -> list[Path]:
    """Delete ``path`` and its companions; the files deleted."""
    deleted = [
        candidate
        for candidate in (path, *(Path(f"{path}{suffix}") for suffix in SQLITE_COMPANIONS))
        if candidate.is_file()
    ]
    for candidate in deleted:
        candidate.unlink()
    return deleted
