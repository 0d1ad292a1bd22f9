"""Helpers for the tests: running the real `configgen`, and proving that nothing changed."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

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
    """Run the real CLI in a subprocess (exit codes and stderr as a user sees them)."""
    data = stdin.encode() if isinstance(stdin, str) else stdin
    done = subprocess.run(
        [sys.executable, "-m", "configgen", *args],
        cwd=cwd,
        input=data,
        capture_output=True,
        env=env or clean_env(),
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
