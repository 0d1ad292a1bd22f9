"""Child processes that start together, come back when they die, and stop together.

Each service runs in its own process group, so stopping it also stops what it started
(`mlflow server` starts uvicorn, which starts workers; nginx has workers). Each also gets
SIGTERM from the kernel if the supervisor itself dies, even by SIGKILL: no orphans.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

PR_SET_PDEATHSIG = 1
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 30.0
STABLE_AFTER = 60.0  # a service up this long has recovered: its next crash waits FIRST_BACKOFF


def _die_with_parent() -> None:
    """In the child, before exec: ask for SIGTERM when the supervisor goes away."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Service:
    name: str
    argv: list[str]
    log: Path | None  # None: `output`, a file descriptor (a container's log)
    env: Mapping[str, str] | None = None
    # A unix socket it listens on: a killed run leaves it behind, and nothing can bind over it.
    socket: Path | None = None
    # What asks it to finish: nginx finishes its requests on SIGQUIT, but drops them on SIGTERM.
    stop_signal: int = signal.SIGTERM
    output: int | None = None  # without `log`: where its output goes (None: the supervisor's)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    started_at: float = 0.0
    backoff: float = FIRST_BACKOFF
    restart_at: float | None = None  # when a crashed service is due to start again

    def start(self) -> None:
        if self.socket is not None:
            self.socket.unlink(missing_ok=True)
        with self.log.open("ab") if self.log else contextlib.nullcontext(self.output) as log:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT if log is not None else None,
                env=self.env,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # safe: the supervisor runs no threads
            )
        self.started_at = time.monotonic()
        self.restart_at = None

    @property
    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def signal_group(self, signum: int) -> bool:
        """Send `signum` to the service's process group; False when nothing is left in it."""
        if self.process is None:
            return False
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            return False
        return True

    def stop(self, grace: float) -> None:
        """stop_signal to the whole group, SIGKILL to what is left after `grace` seconds."""
        if not self.signal_group(self.stop_signal):
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if self.process is not None:
                self.process.poll()  # reap the leader so the group can empty
            if not self.signal_group(0):
                return
            time.sleep(0.05)
        self.signal_group(signal.SIGKILL)
        if self.process is not None:
            self.process.wait()

    def last_lines(self, count: int = 20) -> list[str]:
        if self.log is None:
            return []
        try:
            lines = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return []
        return lines[-count:]


class Supervisor:
    def __init__(self, services: list[Service], say: Callable[[str], None]) -> None:
        self.services = services
        self.say = say

    def start_all(self) -> None:
        for service in self.services:
            service.start()

    def first_exited(self) -> Service | None:
        return next((s for s in self.services if s.exit_code is not None), None)

    def restart_crashed(self) -> None:
        """Bring back services that exited, each after its back-off (1 s, doubling to 30 s)."""
        now = time.monotonic()
        for service in self.services:
            code = service.exit_code
            if code is None:
                continue
            if service.restart_at is None:
                # What the dead leader started may still hold the port: clear the group first.
                service.stop(grace=5)
                if now - service.started_at > STABLE_AFTER:
                    service.backoff = FIRST_BACKOFF
                service.restart_at = now + service.backoff
                where = f" (log: {service.log})" if service.log else ""
                self.say(
                    f"{service.name} exited with code {code}; restarting it in "
                    f"{service.backoff:.0f} s{where}"
                )
                service.backoff = min(service.backoff * 2, MAX_BACKOFF)
            elif now >= service.restart_at:
                service.start()
                self.say(f"{service.name} restarted (pid {service.process.pid})")

    def stop_all(self, grace: float = 10.0) -> None:
        for service in reversed(self.services):  # nginx first: no requests to a dying MLflow
            service.stop(grace)


def reap_orphans(ours: Callable[[], set[int]]) -> None:
    """As PID 1 of a container: reap the exited processes that are not our services' (orphans
    the kernel gave us), which would otherwise stay zombies. Ours are left for Popen to reap,
    so that their exit codes are seen."""
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if info is None or info.si_pid in ours():
            return
        os.waitpid(info.si_pid, 0)
