"""The local stack's data folder: what lasts between runs of `configgen up`, and the lock that
says a stack runs from it.

    data/
      up.pid              the supervisor's pid, locked while it runs
      mlflow.db           SQLite metadata (bundled backend store)
      artifacts/          artifacts (bundled artifact destination)
      logs/               up.log (detached supervisor), mlflow.log, nginx*.log
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from configgen.errors import StackFailed
from configgen.fileio import make_private_dirs


@dataclass(frozen=True)
class DataDir:
    root: Path

    @property
    def pid_file(self) -> Path:
        return self.root / "up.pid"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run_dir(self) -> Path:
        """nginx's configuration, the sockets and the auth cache, whose keys hold passwords:
        on tmpfs, private, short (a socket path has at most 107 bytes), one per data folder."""
        digest = hashlib.sha256(str(self.root.resolve()).encode()).hexdigest()[:12]
        # A predictable name in a shared folder: prepare_run_dir() refuses one someone else made.
        return Path("/dev/shm") / f"mlflow-stack-{digest}"  # noqa: S108

    def prepare(self) -> None:
        for folder in (self.root, self.logs):
            make_private_dirs(folder)

    def prepare_run_dir(self) -> None:
        """Called by the stack that holds the lock, which removes the folder when it stops: a
        start refused earlier leaves nothing behind in /dev/shm."""
        make_private_dirs(self.run_dir)
        st = self.run_dir.lstat()
        # At most: nginx's workers may pass through (run_folder.py), started as root.
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o067:
            raise StackFailed(
                f"{self.run_dir} is not a private folder of this user; remove it and retry"
            )

    def already_running(self, pid: int | None) -> StackFailed:
        return StackFailed(
            f"a stack is already running from {self.root} (pid {pid}); "
            f"stop it with `configgen down --data {self.root}`"
        )

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold `up.pid` locked, with this process's pid in it, or fail if a stack runs."""
        fd = os.open(self.pid_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise self.already_running(self.running_pid()) from None
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            yield
        finally:
            os.close(fd)

    def running_pid(self) -> int | None:
        """The supervisor's pid if one holds the lock, else None."""
        try:
            fd = os.open(self.pid_file, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                text = self.pid_file.read_text().strip()
                return int(text) if text.isdigit() else None
            return None  # we got the lock: nobody holds it
        finally:
            os.close(fd)
