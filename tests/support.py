"""Helpers for the tests: running the real `configgen`, and proving that nothing changed."""

from __future__ import annotations

import base64
import os
import re
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from configgen import procfs
from configgen.waiting import wait_until

REPO = Path(__file__).resolve().parent.parent

# Cost 4 keeps the suite fast; tests/test_htpasswd.py checks the default cost 12 once. The
# tests about HTTPS say so; the others talk plain HTTP on loopback.
FAST_STACK = "auth:\n  bcrypt_cost: 4\ntls:\n  mode: off\n"
PASSWORD = "correct horse battery"


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a configgen run, without this shell's stack or secret settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONFIGGEN_", "MYSQL_", "S3_"))}
    env.update(extra)
    return env


def run_configgen(
    *args: str, cwd: Path, stdin: str | bytes | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess (exit codes and stderr as a user sees them): this
    checkout's, also from another folder where `-m configgen` would find the installed one
    (in a git worktree, the main checkout's editable install)."""
    data = stdin.encode() if isinstance(stdin, str) else stdin
    env = dict(env or clean_env())
    # This checkout's configgen, wherever `cwd` is: the venv may hold an editable install of
    # another checkout (a git worktree shares the main one's venv).
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", "configgen", *args],
        cwd=cwd,
        input=data,
        capture_output=True,
        env=env,
        timeout=120,
    )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


Configgen = Callable[..., subprocess.CompletedProcess[str]]


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file and folder under `folder` with its content and mode: to prove nothing changed."""
    return {
        str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else b"", p.stat().st_mode)
        for p in sorted(folder.rglob("*"))
    }


def children(pid: int) -> set[int]:
    """The living (not zombie) processes whose parent is `pid`."""
    return {child for child in procfs.children(pid) if procfs.running(child)}


def wait_for_new(processes: Callable[[], set], old: set, what: str, timeout: float = 60) -> None:
    """Until none of `old` is among `processes()` and something else is: after nginx's
    reload, every worker that ran the old configuration has exited, so from then on only the
    new configuration answers (a new connection could still reach an old worker before)."""
    def replaced() -> bool:
        now = processes()
        return bool(now) and not now & old

    wait_until(replaced, timeout, f"{what} kept its old processes: no reload")


LOG_MARKER = "log-marker-"


def verifier_checks(
    read_log: Callable[[], str], send: Callable[[tuple[str, str]], object], timeout: float = 60
) -> list[str]:
    """The password verifier's log (one line per check: docs/auth.md) once it holds every check
    made before this call, without guessing how long its writing takes: a wrong password under
    a user name of its own is sent through `send`, and the log read until that check's line is
    in. The verifier writes a check's line as it answers it, before it takes the next request,
    so the lines of earlier checks come first. Marker lines are left out."""
    marker = f"{LOG_MARKER}{time.monotonic_ns()}"
    send((marker, "not the password"))
    deadline = time.monotonic() + timeout
    while True:
        lines = read_log().splitlines()
        if any(f'user="{marker}"' in line for line in lines):
            return [line for line in lines if f'user="{LOG_MARKER}' not in line]
        assert time.monotonic() < deadline, f"the verifier never logged {marker}: {lines[-5:]}"
        time.sleep(0.05)


def fresh_until(cache: Path, login: tuple[str, str]) -> int:
    """The last second (since the epoch) in which nginx serves its cached success for `login`
    from the auth cache folder `cache` without asking the verifier again: the valid_sec of
    the newest entry, which nginx keeps in the file's header after the format version
    (ngx_http_file_cache_header_t, two 8-byte fields on 64-bit Linux); nginx uses it while
    its clock's whole seconds do not pass it."""
    token = base64.b64encode(":".join(login).encode())
    found = [p.read_bytes() for p in cache.rglob("*") if p.is_file()]
    ends = [struct.unpack_from("<qq", data)[1] for data in found if token in data]
    assert ends, f"no cached success for {login[0]} in {cache}"
    return max(ends)


def cache_seconds(server_conf: str) -> int:
    """How long nginx keeps a successful password check, from a rendered mlflow-server.conf."""
    return int(re.search(r"proxy_cache_valid 200 (\d+)s;", server_conf)[1])
