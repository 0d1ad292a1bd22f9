"""`configgen up --detach` and `configgen down`: the supervisor in the background, started and
stopped; and telling a running stack that its users changed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path

from configgen import procfs, reload
from configgen.errors import StackFailed
from configgen.stack import Project
from configgen.targets.local import run_folder, startup
from configgen.targets.local.data import DataDir
from configgen.targets.local.runner import Options


def start(
    project: Project,
    data: DataDir,
    options: Options,
    *,
    environ: Mapping[str, str],
    say: Callable[[str], None],
) -> str:
    """Run the supervisor in the background (runner.background_main); return the URL once
    the stack is healthy."""
    pid = data.running_pid()
    if pid is not None:
        raise data.already_running(pid)
    startup.check_ports_free(options.host, options.ports)
    log = data.logs / "up.log"
    given = asdict(options) | {
        "stack_file": str(project.stack_file.resolve()),
        "data": str(data.root.resolve()),
    }
    with log.open("ab") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "configgen.targets.local.runner"],
            stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT,
            env=dict(environ), start_new_session=True,
        )  # fmt: skip
    assert child.stdin is not None  # noqa: S101 - stdin=PIPE
    child.stdin.write(json.dumps(given).encode())
    child.stdin.close()
    port, http_port = options.ports
    base_url = startup.url(options.host, port, https=http_port is not None)
    say(f"starting in the background (pid {child.pid}, log: {log})")
    try:
        # The child gives up by itself after `timeout`, and exits.
        while child.poll() is None and not startup.healthy(base_url):
            time.sleep(0.25)
    except KeyboardInterrupt:
        child.terminate()  # it stops what it started
        child.wait()
        raise
    if child.returncode is not None:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()[-25:]
        raise StackFailed(
            f"the stack did not start (exit code {child.returncode}; log: {log})",
            [f"last lines of {log}:", *lines],
        )
    return base_url


def stop(data: DataDir, timeout: float = 30.0) -> int | None:
    """Stop the stack running from `data`; return its pid, or None if none was running."""
    pid = data.running_pid()
    if pid is None:
        return None
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return pid
    deadline = time.monotonic() + timeout
    # The lock goes when the children are stopped; the supervisor exits a moment later.
    while data.running_pid() is not None or procfs.running(pid):
        if time.monotonic() > deadline:
            raise StackFailed(f"the stack (pid {pid}) did not stop within {timeout:.0f} s")
        time.sleep(0.1)
    return pid


def refresh_users(users_file: Path, data: DataDir) -> None:
    """Give the stack running from `data`, if any, the users file as it is now (the
    supervisor would within half a second)."""
    if data.running_pid() is not None:
        run_folder.RunFolder(data.run_dir).sync_users(users_file)


def reload_nginx(data: DataDir) -> bool:
    """Make the local nginx re-read its configuration (the users' generation: call
    refresh_users() first), and return once its old workers are gone; False if no stack runs
    from `data`."""
    if data.running_pid() is None:
        return False
    try:
        # Only the nginx with the auth cache: the verifier reads the users file at each check.
        master = int((run_folder.RunFolder(data.run_dir).conf / "nginx.pid").read_text().strip())
        reload.reload_and_wait(
            lambda: procfs.children(master, "worker process"),
            lambda: os.kill(master, signal.SIGHUP),
        )
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return False
    return True
