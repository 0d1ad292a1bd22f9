"""README's first quick start and client snippet, taken from README.md as they are written and
run by an ordinary user in a copy of the repository: README and product cannot drift apart.
Only the password the stack prints is filled in, where README says to."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import time

import pytest

from tests import unprivileged
from tests.support import REPO, clean_env

pytestmark = pytest.mark.slow

MARK = "<!-- run literally by tests/test_readme.py: {} -->\n```sh\n"
PLACEHOLDER = "<the password it printed>"


def block(name: str) -> str:
    """The shell block README.md marks with `name`."""
    text = (REPO / "README.md").read_text()
    start = text.index(MARK.format(name)) + len(MARK.format(name))
    return text[start : text.index("```", start)]


class Output:
    """What a process has printed so far."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process, self.text = process, ""

    def wait_for(self, pattern: str, timeout: float) -> str:
        """The first group of `pattern` once the output matches it."""
        stream = self.process.stdout
        assert stream is not None
        deadline = time.monotonic() + timeout
        while (found := re.search(pattern, self.text)) is None:
            assert self.process.poll() is None, f"exited ({self.process.returncode}):\n{self.text}"
            assert time.monotonic() < deadline, f"no {pattern!r} in {timeout:.0f} s:\n{self.text}"
            if select.select([stream], [], [], 1)[0]:
                self.text += os.read(stream.fileno(), 65536).decode(errors="replace")
        return found[1]


def test_the_quick_start_and_the_client_snippet_work_as_written():
    home = unprivileged.folder("readme-")
    clone = unprivileged.copy_source(home / "mlflow-stack")
    env = clean_env(HOME=str(home), USER=unprivileged.NAME,
                    PIP_CACHE_DIR=str(unprivileged.PIP_CACHE))  # fmt: skip
    unprivileged.PIP_CACHE.mkdir(exist_ok=True)
    os.chown(unprivileged.PIP_CACHE, unprivileged.UID, unprivileged.GID)
    quick_start = block("quick start")
    up = subprocess.Popen(unprivileged.argv("bash", "-euc", quick_start), cwd=clone, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          start_new_session=True)  # fmt: skip
    try:
        output = Output(up)
        # The install's time is the machine's (pip, MLflow's wheels): bounded generously.
        password = output.wait_for(r"created the first user: admin, password: (\S+)", 900)
        output.wait_for(r"(MLflow is ready at https://127\.0\.0\.1:8443)", 180)
        client = block("client")
        assert client.count(PLACEHOLDER) == 1
        filled = client.replace(PLACEHOLDER, password)
        done = subprocess.run(unprivileged.argv("bash", "-euc", filled), cwd=clone, env=env,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        logged = subprocess.run(
            unprivileged.argv("grep", "-cE", "POST /api/2.0/mlflow/runs/log-(metric|batch)",
                              "data/logs/mlflow.log"),
            cwd=clone, capture_output=True, text=True,
        )  # fmt: skip
        assert logged.stdout.strip() not in ("", "0"), "the metric never reached MLflow"
    finally:
        os.killpg(up.pid, signal.SIGINT)  # Ctrl-C, as README says
        out, _ = up.communicate(timeout=60)
        unprivileged.remove(home)
    assert up.returncode == 0, out.decode(errors="replace")[-2000:]
    assert "stopped (SIGINT)" in out.decode()
