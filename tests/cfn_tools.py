"""cfn-lint and checkov, in a virtualenv of their own: their pins (pydantic, boto3, networkx...)
need not agree with MLflow's, which the suite's own environment holds."""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
from pathlib import Path

VENV = Path("/var/tmp/configgen-cfn-tools")
# Checked with cfn-lint 1.58.0 and checkov 3.3.30; newer releases may add rules, which is the
# point of a check, but not within a major version's API.
REQUIREMENTS = ("cfn-lint>=1.58,<2", "checkov>=3.3.30,<4")
STAMP = VENV / "configgen-requirements.json"  # what the folder was made with


def ensure() -> Path:
    """The tools' bin folder, made once per machine and again when REQUIREMENTS change."""
    VENV.parent.mkdir(parents=True, exist_ok=True)
    # Two pytest processes on one machine must not build the folder at once.
    with open(VENV.parent / "configgen-cfn-tools.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _current():
            shutil.rmtree(VENV, ignore_errors=True)
            python3 = shutil.which("python3")
            assert python3, "python3 makes the tools' virtualenv"
            subprocess.run([python3, "-m", "venv", str(VENV)], check=True)
            subprocess.run(
                [str(VENV / "bin" / "pip"), "install", "--quiet", *REQUIREMENTS],
                check=True,
                timeout=900,
            )
            STAMP.write_text(json.dumps(REQUIREMENTS))
    return VENV / "bin"


def _current() -> bool:
    bin_dir = VENV / "bin"
    if not all((bin_dir / tool).is_file() for tool in ("cfn-lint", "checkov")):
        return False
    try:
        return tuple(json.loads(STAMP.read_text())) == REQUIREMENTS
    except (OSError, ValueError):
        return False


def version(bin_dir: Path, tool: str) -> str:
    done = subprocess.run([str(bin_dir / tool), "--version"], capture_output=True, text=True)
    return done.stdout.strip()
