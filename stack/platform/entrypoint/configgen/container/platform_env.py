"""The platform image's settings, from the environment as Heroku and AWS App Runner hand them
out (the variables are listed in docs/platform.md). Standard library only.

Everything is checked before anything starts, so that a typo stops the container at once with
one line naming the variable. Messages never hold a value that may be secret.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from configgen.container import users
from configgen.container.database_url import sqlalchemy_url
from configgen.envvars import file_env
from configgen.errors import UsageError

DEFAULT_DATA_DIR = "/tmp/mlflow"  # noqa: S108 - the platforms' one writable folder
ARTIFACT_SCHEMES = ("s3", "gs")
# Passed through to boto3 inside MLflow, for S3 outside AWS or without an instance role.
S3_VARIABLES = ("MLFLOW_S3_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_REGION")
S3_SECRETS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
# The stack file's host names (configgen/values.py HOST), which the image does not carry.
LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
HOST = re.compile(rf"(?i)(\*\.)?{LABEL}(\.{LABEL})*")
MAX_WORKERS = 8


def workers_for_memory(megabytes: int) -> int:
    """MLflow workers that fit in `megabytes` with headroom: 200 MB for nginx, the supervisor
    and uvicorn's parent, 300 MB per worker (measured: about 40 and 240 after the tests'
    client flow, docs/platform.md; the rest is room to grow). 512 MB: 1; 1 GB: 2; at most 4."""
    return max(1, min(4, (megabytes - 200) // 300))


def container_memory(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """The container's memory limit in MB, from its cgroup (v2, else v1); None if unlimited."""
    for name in ("memory.max", "memory/memory.limit_in_bytes"):
        try:
            text = (root / name).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 50:  # v1 says "unlimited" with a huge number
            return int(text) // (1 << 20)
        return None
    return None


@dataclass(frozen=True)
class Settings:
    port: int
    database_url: str  # secret: a SQLAlchemy URL with its password
    htpasswd: str  # secret: the users file nginx reads
    artifacts: str
    hosts: tuple[str, ...]  # custom domains, beside the image's own list
    workers: int
    data_dir: Path
    gcs_credentials: str | None = field(default=None, repr=False)  # secret: JSON
    s3: dict[str, str] = field(default_factory=dict, repr=False)  # secrets among them


def _required(name: str, environ: Mapping[str, str], hint: str) -> str:
    value = file_env(name, environ)
    if not value or not value.strip():
        raise UsageError(f"{name}: not set; {hint}")
    return value


def port(environ: Mapping[str, str]) -> int:
    value = environ.get("PORT", "")
    if not value:
        raise UsageError("PORT: not set; the platform sets it (App Runner: 8080)")
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise UsageError(f"PORT: expected a port number from 1 to 65535, got {value[:20]!r}")
    return int(value)


def database_url(environ: Mapping[str, str]) -> str:
    url = _required(
        "DATABASE_URL", environ, "Heroku Postgres sets it; elsewhere give postgresql://USER:"
        "PASSWORD@HOST:5432/DB or mysql://... (or DATABASE_URL_FILE)"
    )  # fmt: skip
    return sqlalchemy_url(url.strip(), "DATABASE_URL")


def artifacts(environ: Mapping[str, str]) -> str:
    value = _required(
        "MLFLOW_ARTIFACTS_DESTINATION", environ,
        "where MLflow keeps artifacts: s3://BUCKET/PATH or gs://BUCKET/PATH (the container's "
        "own disk is lost on every restart)",
    )  # fmt: skip
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in ARTIFACT_SCHEMES or not rest.split("/")[0]:
        raise UsageError(
            "MLFLOW_ARTIFACTS_DESTINATION: expected s3://BUCKET/PATH or gs://BUCKET/PATH, "
            f"got {value[:60]!r}"
        )
    if "@" in rest.split("/")[0]:
        raise UsageError("MLFLOW_ARTIFACTS_DESTINATION: holds credentials; set them apart")
    return value


def hosts(environ: Mapping[str, str]) -> tuple[str, ...]:
    value = environ.get("MLFLOW_HOSTS", "")
    names = tuple(n.strip().lower() for n in value.split(",") if n.strip())
    for name in names:
        if not HOST.fullmatch(name) or len(name) > 253:
            raise UsageError(
                f"MLFLOW_HOSTS: {name[:60]!r} is not a host name (no scheme, port or path); "
                "give custom domains separated by commas, e.g. mlflow.example.com"
            )
    return names


def workers(environ: Mapping[str, str], memory_mb: int | None) -> int:
    value = environ.get("WEB_CONCURRENCY", "")
    if not value:
        return 2 if memory_mb is None else workers_for_memory(memory_mb)
    if not value.isdigit() or not 1 <= int(value) <= MAX_WORKERS:
        raise UsageError(
            f"WEB_CONCURRENCY: expected MLflow's worker count from 1 to {MAX_WORKERS}, "
            f"got {value[:20]!r}"
        )
    return int(value)


def data_dir(environ: Mapping[str, str]) -> Path:
    value = environ.get("MLFLOW_DATA_DIR", DEFAULT_DATA_DIR)
    if not PurePosixPath(value).is_absolute() or ".." in PurePosixPath(value).parts:
        raise UsageError(f"MLFLOW_DATA_DIR: expected an absolute path, got {value[:60]!r}")
    return Path(value)


def gcs_credentials(environ: Mapping[str, str]) -> str | None:
    """A service account key, as JSON or as base64 of it (a config var holds either)."""
    name = "GOOGLE_APPLICATION_CREDENTIALS_JSON"
    value = file_env(name, environ)
    if not value:
        return None
    text = value.strip()
    if not text.startswith("{"):
        try:
            text = base64.b64decode(text, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise UsageError(f"{name}: neither JSON nor base64 of JSON") from None
    try:
        key = json.loads(text)
    except json.JSONDecodeError:
        raise UsageError(f"{name}: not JSON (a service account key file's content)") from None
    if not isinstance(key, dict) or "type" not in key:
        raise UsageError(f"{name}: not a Google credentials file (no \"type\" key)")
    return text


def s3_environment(environ: Mapping[str, str]) -> dict[str, str]:
    given = {n: environ[n] for n in S3_VARIABLES if environ.get(n)}
    for name in S3_SECRETS:
        value = file_env(name, environ)
        if value:
            given[name] = value
    if ("AWS_ACCESS_KEY_ID" in given) != ("AWS_SECRET_ACCESS_KEY" in given):
        raise UsageError(
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY: set both or neither (without them "
            "boto3 uses the instance role)"
        )
    return given


def read(environ: Mapping[str, str], memory_mb: int | None = None) -> Settings:
    """Every setting of a web container, checked."""
    text = _required(users.VARIABLE, environ, users.FIX)
    return Settings(
        port=port(environ),
        database_url=database_url(environ),
        htpasswd=users.htpasswd_file(text),
        artifacts=artifacts(environ),
        hosts=hosts(environ),
        workers=workers(environ, memory_mb),
        data_dir=data_dir(environ),
        gcs_credentials=gcs_credentials(environ),
        s3=s3_environment(environ),
    )
