"""``quorum_shared.secret_files``: modes that do not depend on the umask, and writes that
replace a file whole or not at all (also when the writer is killed with SIGKILL)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from quorum_shared.secret_files import secret_directory, write_secret
from tests.support.node_process import wait_until


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.fixture
def strict_umask() -> Iterator[None]:
    previous = os.umask(0o277)  # would take the owner's write bit away too
    try:
        yield
    finally:
        os.umask(previous)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_a_secret_is_0600_under_a_permissive_umask(tmp_path: Path, permissive_umask: None) -> None:
    (tmp_path / "plain.txt").write_text("not a secret")
    assert mode(tmp_path / "plain.txt") == 0o666  # what the umask alone gives
    path = write_secret(tmp_path / "key", "s3cret")
    assert mode(path) == 0o600 and path.read_text() == "s3cret"


def test_a_secret_is_exactly_0600_under_a_strict_umask(tmp_path: Path, strict_umask: None) -> None:
    path = write_secret(tmp_path / "key", b"\x00\x01")
    assert mode(path) == 0o600 and path.read_bytes() == b"\x00\x01"
    write_secret(path, b"again")  # the owner can still replace it
    assert path.read_bytes() == b"again"


def test_secret_folders_and_their_new_parents_are_0700(
    tmp_path: Path, permissive_umask: None
) -> None:
    folder = secret_directory(tmp_path / "a" / "b" / "c")
    for created in (tmp_path / "a", tmp_path / "a" / "b", folder):
        assert mode(created) == 0o700, created
    assert secret_directory(folder) == folder  # idempotent


def test_a_secret_folder_under_a_strict_umask_is_still_usable(
    tmp_path: Path, strict_umask: None
) -> None:
    folder = secret_directory(tmp_path / "keys")
    assert mode(folder) == 0o700
    assert write_secret(folder / "key", "x").read_text() == "x"


def test_an_existing_folder_keeps_its_mode(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    secret_directory(shared)
    assert mode(shared) == 0o755


def test_a_path_that_is_a_file_is_not_a_folder(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError):
        secret_directory(tmp_path / "file")


def test_replacing_swaps_the_whole_file_and_fixes_a_loose_mode(tmp_path: Path) -> None:
    path = tmp_path / "layout.json"
    path.write_text("x" * 100_000)
    path.chmod(0o644)
    old_inode = path.stat().st_ino
    write_secret(path, "short")
    assert path.read_text() == "short"
    assert mode(path) == 0o600
    assert path.stat().st_ino != old_inode  # a new file renamed over, not rewritten in place
    assert leftovers(tmp_path) == []


def test_replace_false_refuses_an_existing_file(tmp_path: Path) -> None:
    path = write_secret(tmp_path / "alice.key", "first", replace=False)
    with pytest.raises(FileExistsError):
        write_secret(path, "second", replace=False)
    assert path.read_text() == "first"
    assert leftovers(tmp_path) == []


def test_a_failure_mid_write_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_secret(tmp_path / "nodekey", "old key")
    real_write = os.write

    def write_half_then_fail(descriptor: int, data: bytes | memoryview) -> int:
        real_write(descriptor, bytes(data[: len(data) // 2]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", write_half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        write_secret(path, "new key, longer than the old one")
    monkeypatch.undo()
    assert path.read_text() == "old key"
    assert leftovers(tmp_path) == []


def test_a_failure_before_the_rename_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_secret(tmp_path / "password.txt", "old")

    def refuse(*args: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="Input/output"):
        write_secret(path, "new")
    monkeypatch.undo()
    assert path.read_text() == "old"
    assert leftovers(tmp_path) == []


def test_a_writer_killed_mid_write_leaves_the_old_file_whole(tmp_path: Path) -> None:
    """A real SIGKILL while the new content sits in the temporary file, unflushed."""
    path = write_secret(tmp_path / "raft-password.txt", "old password\n")
    ready = tmp_path / "ready"
    child = textwrap.dedent(
        f"""
        import os, time
        from pathlib import Path
        from quorum_shared.secret_files import write_secret

        def stall(descriptor):
            Path({str(ready)!r}).write_text("in fsync")
            time.sleep(600)

        os.fsync = stall
        write_secret(Path({str(path)!r}), "new password " * 100_000)
        """
    )
    process = subprocess.Popen([sys.executable, "-c", child])
    try:
        wait_until(ready.exists, 30, "the writer to reach fsync")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert path.read_text() == "old password\n"
    assert mode(path) == 0o600
    (stray,) = leftovers(tmp_path)  # the half-written temporary file stays, but 0600
    assert mode(tmp_path / stray) == 0o600
