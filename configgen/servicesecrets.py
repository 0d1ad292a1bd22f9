"""`configgen init`: the service secrets, generated once and never overwritten.

Each secret is a file in the secrets folder (0700) with mode 0600, which the compose stack
mounts as compose secrets (never as environment variables, which `docker inspect` shows).
A value can be given instead of generated through the environment, as the official database
images allow: `NAME` or `NAME_FILE` (a path to a file holding it).
"""

from __future__ import annotations

import os
import secrets
import stat
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from configgen.envvars import file_env
from configgen.errors import UsageError
from configgen.fileio import create_exclusive, make_private_dirs
from configgen.stack import Project

FOLDER_MODE = 0o700
FILE_MODE = 0o600
_ALPHABET = string.ascii_letters + string.digits  # safe unquoted in URIs and shells


@dataclass(frozen=True)
class Secret:
    file: str  # name inside the secrets folder
    variable: str  # its name in the environment
    description: str
    length: int = 32


SECRETS = (
    Secret("mysql_root_password", "MYSQL_ROOT_PASSWORD", "database root password"),
    Secret("mysql_password", "MYSQL_PASSWORD", "database password of the mlflow user"),
    Secret("s3_access_key", "S3_ACCESS_KEY", "object-store access key", 20),
    Secret("s3_secret_key", "S3_SECRET_KEY", "object-store secret key", 40),
)


def generate(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def from_environment(secret: Secret, environ: Mapping[str, str]) -> str | None:
    """A value given as `VARIABLE` or `VARIABLE_FILE` instead of generated."""
    value = file_env(secret.variable, environ)
    if value is not None and (not value or any(c.isspace() for c in value)):
        raise UsageError(f"{secret.variable}: must be non-empty, without whitespace")
    return value


def _tighten(path: Path, mode: int, shown: str, report: list[str]) -> None:
    current = stat.S_IMODE(path.stat().st_mode)
    if current & ~mode:
        path.chmod(mode)
        report.append(f"tightened {shown} from {current:04o} to {mode:04o}")


def init(project: Project, environ: Mapping[str, str] = os.environ) -> list[str]:
    """Create what is missing; return one line per change (empty when nothing changed)."""
    report: list[str] = []
    folder = project.secrets_dir
    shown_folder = project.relative(folder)
    missing = [s for s in SECRETS if not (folder / s.file).exists()]
    # Every value given through the environment is read before anything is written.
    given = {s.file: from_environment(s, environ) for s in missing}

    for created in make_private_dirs(folder, FOLDER_MODE):
        report.append(f"created {project.relative(created)}/ (mode {FOLDER_MODE:04o})")
    _tighten(folder, FOLDER_MODE, f"{shown_folder}/", report)
    for secret in missing:
        path = folder / secret.file
        value = given[secret.file] or generate(secret.length)
        if create_exclusive(path, value.encode() + b"\n", FILE_MODE):
            origin = f"from ${secret.variable}" if given[secret.file] else "generated"
            report.append(f"created {project.relative(path)} ({secret.description}, {origin})")
    for secret in SECRETS:
        path = folder / secret.file
        _tighten(path, FILE_MODE, project.relative(path), report)

    return report
