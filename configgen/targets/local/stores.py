"""Where the local runner's MLflow keeps metadata and artifacts, and the credentials it needs.

`bundled` stores live in the data folder (SQLite, an artifacts folder). Other stores come from
the stack file, with their secrets from the environment or `configgen init`'s files, never
from the stack file itself:

- `MLFLOW_BACKEND_URI` (or `_FILE`) replaces `mlflow.backend_store` entirely;
- `MLFLOW_DB_PASSWORD` (or `_FILE`) is the password of the database URI's user;
- `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`, else `secrets/s3_access_key` and
  `secrets/s3_secret_key`, are the object store's keys when `object_store.endpoint` is set.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from configgen.container.database_url import with_driver
from configgen.container.stores import S3, with_password
from configgen.envvars import file_env
from configgen.errors import UsageError
from configgen.stack import Project


def backend_uri(project: Project, data_dir: Path, environ: Mapping[str, str]) -> str:
    """The database URI for `mlflow server --backend-store-uri`."""
    given = file_env("MLFLOW_BACKEND_URI", environ)
    if given:
        return with_driver(given)
    if project.stack.mlflow.bundled_backend:
        return f"sqlite:///{(data_dir / 'mlflow.db').resolve()}"
    # postgresql:// and mysql:// name the installed driver (see database_url.py).
    store = with_driver(project.stack.mlflow.backend_store)
    password = file_env("MLFLOW_DB_PASSWORD", environ)
    return store if password is None else with_password(store, password)


def artifact_destination(project: Project, data_dir: Path) -> str:
    """The URI for `mlflow server --artifacts-destination`."""
    destination = project.stack.mlflow.artifact_destination
    if project.stack.mlflow.bundled_artifacts:
        return (data_dir / "artifacts").resolve().as_uri()
    return destination


def _key(project: Project, variable: str, secret_file: str, environ: Mapping[str, str]) -> str:
    value = file_env(variable, environ)
    if value:
        return value
    path = project.secrets_dir / secret_file
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise UsageError(
            f"object_store.endpoint is set but there is no {variable} and no "
            f"{project.relative(path)}; run `configgen init`"
        ) from None


def self_hosted_s3(project: Project, destination: str, environ: Mapping[str, str]) -> S3 | None:
    """The S3 endpoint for `destination`, when it is an s3:// URI on `object_store.endpoint`."""
    store = project.stack.object_store
    if not store.endpoint or urlsplit(destination).scheme != "s3":
        return None
    return S3(
        endpoint=store.endpoint.rstrip("/"),
        region=store.region,
        bucket=urlsplit(destination).netloc,
        access_key=_key(project, "AWS_ACCESS_KEY_ID", "s3_access_key", environ),
        secret_key=_key(project, "AWS_SECRET_ACCESS_KEY", "s3_secret_key", environ),
    )
