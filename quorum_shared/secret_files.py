"""The one way secrets are written to disk: key files, node keys, keystores, passwords,
and the layout or network files of a development network that hold private keys.

Why one helper: a secret written with ``Path.write_text`` gets the umask's mode (0644
on most systems), so every local user can read it, and a crash halfway through leaves a
truncated key where the old one was. Fixing that after the fact with ``chmod`` leaves a
window in which the file is readable, and each caller doing it slightly differently is
how one of them forgets. Here:

- A file is first written to a temporary file in the same folder, created with
  ``O_EXCL`` at mode 0600, so it is never readable by anyone else, not even for an
  instant; then it is flushed to disk and renamed over the target, and the folder is
  flushed so the rename itself survives a crash. A reader sees the old file whole or
  the new file whole, never a mix; a crash leaves the old file (and at worst a stray
  ``.NAME.*.tmp`` file, also 0600).
- The mode does not depend on the umask: a umask can only remove bits, and the file is
  created at 0600, so it can only be stricter than 0600; ``fchmod`` on the still-empty
  descriptor restores exactly 0600 (for example under a umask of 0277 that would leave a
  key its owner cannot rewrite). No bit outside 0600 is ever set.
- Folders created for secrets are 0700 the same way. A folder that already exists is
  left as it is (it may be the user's own, ``/tmp`` even): the files in it are 0600.

Callers that must never replace an existing secret (a key generated once) pass
``replace=False``: the new file is then linked into place, which fails atomically with
``FileExistsError`` if the name exists, so two concurrent generators cannot both win.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

SECRET_FILE_MODE = 0o600
SECRET_DIRECTORY_MODE = 0o700


def secret_directory(path: Path) -> Path:
    """Create ``path`` and any missing parent at mode 0700; return ``path``.

    Folders that exist already keep their mode.
    """
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, SECRET_DIRECTORY_MODE)
        except FileExistsError:
            continue  # made by someone else meanwhile: not ours to change
        # The folder is new and empty, and the umask made it at most 0700; this only
        # gives back owner bits a strict umask took away.
        os.chmod(folder, SECRET_DIRECTORY_MODE)
    if not path.is_dir():
        raise NotADirectoryError(f"{path} exists and is not a folder")
    return path


def write_secret(path: Path, content: bytes | str, *, replace: bool = True) -> Path:
    """Write ``content`` to ``path`` at mode 0600, atomically (see the module docstring).

    ``replace=False`` refuses to overwrite an existing file, with ``FileExistsError``.
    The parent folder must exist (use ``secret_directory`` to create it).
    """
    data = content.encode("utf-8") if isinstance(content, str) else content
    folder = path.parent
    temporary = folder / f".{path.name}.{secrets.token_hex(8)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    descriptor = os.open(temporary, flags, SECRET_FILE_MODE)
    try:
        try:
            os.fchmod(descriptor, SECRET_FILE_MODE)
            view = memoryview(data)
            while view:
                written = os.write(descriptor, view)
                view = view[written:]
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        if replace:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)
            os.unlink(temporary)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _sync_directory(folder)
    return path


def _sync_directory(folder: Path) -> None:
    """Flush a folder's entries, so that a rename or link into it survives a crash."""
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
