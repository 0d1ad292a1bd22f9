"""Crash-safe file updates: an exclusive lock for read-modify-write, and atomic replacement.

Readers (nginx, a concurrent `configgen`) and a crash at any moment see either the old file or
the new one, never a truncated mix.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock for updating `path`.

    The lock is taken on the folder holding `path`: the file itself is replaced by rename, so a
    lock on its old inode would not stop a writer that opened the new one, and a folder lock
    leaves no lock file behind.
    """
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def make_private_dirs(folder: Path, mode: int = 0o700) -> list[Path]:
    """Create `folder` with `mode` and any missing parents with 0700 (mkdir(parents=True)
    would give them the default mode); return the folders created, outermost first."""
    created = []
    for path in [p for p in (folder, *folder.parents) if not p.exists()][::-1]:
        wanted = mode if path == folder else 0o700
        try:
            path.mkdir(mode=wanted)
        except FileExistsError:
            continue  # a concurrent run made it first
        path.chmod(wanted)  # whatever the umask
        created.append(path)
    return created


def _write_temp(path: Path, data: bytes, mode: int) -> str:
    """Write `data` to a new temp file beside `path`, synced to disk; return its name."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            if path.exists():
                # Keep the group (e.g. the one nginx reads through) when replacing a file.
                st = path.stat()
                with contextlib.suppress(PermissionError):
                    os.fchown(f.fileno(), st.st_uid, st.st_gid)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def _sync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int) -> None:
    """Replace (or create) `path` with `data` and permission bits `mode`, atomically."""
    tmp = _write_temp(path, data, mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    _sync_dir(path.parent)


def create_exclusive(path: Path, data: bytes, mode: int) -> bool:
    """Create `path` with `data` unless it already exists; return whether it was created.

    The file appears complete or not at all (hard link of a synced temp file), and an existing
    file, even one created a moment ago by another process, is never overwritten.
    """
    tmp = _write_temp(path, data, mode)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)
    _sync_dir(path.parent)
    return True
