"""The MLflow container's entrypoint: from environment variables to a running `mlflow server`.

In the manner of the official database images' entrypoints:

1. secrets given as `NAME_FILE` (compose or Docker secrets, readable by root only) are read
   while still root; then the process drops to the `mlflow` user for good;
2. the backend store URI comes from `MLFLOW_BACKEND_URI`, else `DATABASE_URL` (only its
   scheme rewritten: Heroku's `postgres://` becomes `postgresql+psycopg2://`, `mysql://`
   `mysql+pymysql://`; see database_url.py), else `MLFLOW_DB_DIALECT`, `_HOST`, `_PORT`,
   `_USERNAME`, `_PASSWORD`, `_DATABASE`; without any, SQLite in /var/lib/mlflow;
3. GCS credentials given inline (`GOOGLE_APPLICATION_CREDENTIALS_JSON`, or base64 in
   `GOOGLE_AUTH_STRING`) go to a 0600 file that `GOOGLE_APPLICATION_CREDENTIALS` names;
4. it waits for the database (bounded), runs `mlflow db upgrade` under a database lock so
   replicas starting together take turns, then execs `mlflow server` with the derived flags
   and the container's arguments.

No secret is ever printed: messages name variables and hosts, never values.
Exit codes: 2 bad configuration, 1 the database never answered or the upgrade failed.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import os
import pwd
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, MutableMapping
from pathlib import Path
from urllib.parse import quote, urlsplit

from configgen.container import migrate
from configgen.container.database_url import DRIVERS, sqlalchemy_url, with_driver
from configgen.container.server import (
    ALWAYS_OFF,
    BACKEND_STORE_VARIABLE,
    DEFAULT_PORT,
    DEFAULT_WORKERS,
    FEATURES,
    server_args,
)
from configgen.container.stores import with_password
from configgen.envvars import file_env
from configgen.errors import ConfiggenError, StackFailed, UsageError

USER = "mlflow"
HOME = Path("/var/lib/mlflow")
DATABASE_PORT = {"mysql": 3306, "postgresql": 5432, "mssql": 1433}
MIGRATE_MODULE = "configgen.container.migrate"
DRIVER = {"mysql": DRIVERS["mysql"], "postgresql": DRIVERS["postgresql"], "mssql": "mssql+pyodbc"}
# The database-wide locks replicas take turns on for `mlflow db upgrade`: a PostgreSQL
# advisory lock's key (bigint; "mlflow" in ASCII) and a MySQL/MariaDB named lock.
SCHEMA_LOCK_KEY = 0x6D6C666C6F77
SCHEMA_LOCK_NAME = "mlflow_schema_upgrade"

# Secrets that may come as NAME_FILE. They are resolved into the environment while root, as
# docker-library's `file_env` does, so that MLflow and boto3 find them under their own names.
SECRET_VARIABLES = (
    "MLFLOW_BACKEND_URI",
    "DATABASE_URL",
    "MLFLOW_DB_PASSWORD",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_ACCESS_KEY",
    "GOOGLE_APPLICATION_CREDENTIALS_JSON",
    "GOOGLE_AUTH_STRING",
    "MLFLOW_FLASK_SERVER_SECRET_KEY",
)


def say(message: str) -> None:
    print(f"mlflow-entrypoint: {message}", file=sys.stderr, flush=True)


def resolve_secret_files(environ: MutableMapping[str, str]) -> None:
    """Replace each NAME_FILE of SECRET_VARIABLES by NAME holding the file's content."""
    for name in SECRET_VARIABLES:
        value = file_env(name, environ)
        environ.pop(f"{name}_FILE", None)
        if value is not None:
            environ[name] = value


def drop_privileges(environ: MutableMapping[str, str]) -> None:
    """Become the `mlflow` user, if started as root (an orchestrator may start us as it)."""
    if os.getuid() != 0:
        return
    try:
        user = pwd.getpwnam(USER)
    except KeyError:
        raise UsageError(
            f"started as root without a user {USER!r} to become: run the MLflow image "
            "(stack/mlflow/Dockerfile), which has one, or start as another user"
        ) from None
    os.setgroups([])
    os.setgid(user.pw_gid)
    os.setuid(user.pw_uid)
    environ["HOME"] = user.pw_dir
    environ["USER"] = USER


def backend_uri(environ: Mapping[str, str]) -> str:
    """The database URI, from the first of the three ways it can be given."""
    if environ.get("MLFLOW_BACKEND_URI"):
        uri = with_driver(environ["MLFLOW_BACKEND_URI"])
        password = environ.get("MLFLOW_DB_PASSWORD")
        return with_password(uri, password) if password else uri
    if environ.get("DATABASE_URL"):
        # Heroku hands out postgres://, which SQLAlchemy 1.4+ no longer accepts.
        return sqlalchemy_url(environ["DATABASE_URL"], "DATABASE_URL")
    dialect = environ.get("MLFLOW_DB_DIALECT")
    if not dialect:
        return f"sqlite:///{HOME / 'mlflow.db'}"
    if dialect not in DRIVER:
        raise UsageError(f"MLFLOW_DB_DIALECT: expected one of {', '.join(DRIVER)}, got {dialect!r}")
    missing = [
        f"MLFLOW_DB_{key}"
        for key in ("HOST", "USERNAME", "PASSWORD", "DATABASE")
        if not environ.get(f"MLFLOW_DB_{key}")
    ]
    if missing:
        raise UsageError(f"MLFLOW_DB_DIALECT is {dialect} but {', '.join(missing)} not set")
    port = environ.get("MLFLOW_DB_PORT") or str(DATABASE_PORT[dialect])
    if not port.isdigit():
        raise UsageError(f"MLFLOW_DB_PORT: expected a port number, got {port!r}")
    user = quote(environ["MLFLOW_DB_USERNAME"], safe="")
    password = quote(environ["MLFLOW_DB_PASSWORD"], safe="")
    database = quote(environ["MLFLOW_DB_DATABASE"], safe="")
    return f"{DRIVER[dialect]}://{user}:{password}@{environ['MLFLOW_DB_HOST']}:{port}/{database}"


def where(uri: str) -> str:
    """The database's location, for messages: no user, no password."""
    parts = urlsplit(uri)
    if parts.scheme.startswith("sqlite"):
        return parts.path
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)


def write_gcs_credentials(environ: MutableMapping[str, str]) -> None:
    """Inline GCS credentials to a private file, for google-cloud-storage to read."""
    inline = environ.pop("GOOGLE_APPLICATION_CREDENTIALS_JSON", None)
    encoded = environ.pop("GOOGLE_AUTH_STRING", None)
    if inline is None and encoded is None:
        return
    if inline is not None and encoded is not None:
        raise UsageError("both GOOGLE_APPLICATION_CREDENTIALS_JSON and GOOGLE_AUTH_STRING are set")
    if encoded is not None:
        try:
            inline = base64.b64decode(encoded, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise UsageError("GOOGLE_AUTH_STRING: not base64 of UTF-8 text") from None
    try:
        json.loads(inline)
    except json.JSONDecodeError:
        source = (
            "GOOGLE_AUTH_STRING" if encoded is not None else "GOOGLE_APPLICATION_CREDENTIALS_JSON"
        )
        raise UsageError(f"{source}: the credentials are not JSON") from None
    folder = Path(tempfile.mkdtemp(prefix="gcs-"))  # 0700, ours
    path = folder / "credentials.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(inline)
    environ["GOOGLE_APPLICATION_CREDENTIALS"] = str(path)
    say(f"GCS credentials written to {path} (0600)")


def wait_for_database(uri: str, seconds: float) -> None:
    """Connect until the database answers, for at most `seconds`."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(uri)
    deadline = time.monotonic() + seconds
    attempt = 0
    while True:
        attempt += 1
        try:
            with engine.connect():
                break
        except sqlalchemy.exc.SQLAlchemyError as err:
            reason = type(getattr(err, "orig", None) or err).__name__
            if time.monotonic() >= deadline:
                raise StackFailed(
                    f"the database at {where(uri)} did not answer within {seconds:.0f} s "
                    f"({reason}); check that it runs and that MLFLOW_DB_* are right"
                ) from None
            if attempt == 1 or attempt % 5 == 0:
                say(f"waiting for the database at {where(uri)} ({reason}, attempt {attempt})")
            time.sleep(2)
    engine.dispose()
    say(f"the database at {where(uri)} answers")


@contextlib.contextmanager
def schema_lock(uri: str) -> Iterator[None]:
    """Hold a lock that every replica of this image takes before touching the schema."""
    scheme = urlsplit(uri).scheme
    if scheme.startswith("sqlite"):
        with open(f"{urlsplit(uri).path}.upgrade-lock", "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield
        return
    import sqlalchemy

    # Autocommit: both locks belong to the session, not to a transaction. A transaction left
    # open through a long upgrade is what managed databases' idle-in-transaction timeouts
    # end, connection and lock with it, while the other replicas wait on the lock.
    engine = sqlalchemy.create_engine(uri, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        if scheme.startswith("mysql"):
            name = {"name": SCHEMA_LOCK_NAME}
            conn.execute(sqlalchemy.text("SELECT GET_LOCK(:name, 3600)"), name)
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text("SELECT RELEASE_LOCK(:name)"), name)
        elif scheme.startswith("postgresql"):
            key = {"key": SCHEMA_LOCK_KEY}
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), key)
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), key)
        else:
            say(f"no schema lock for {scheme}: start one replica first when upgrading")
            yield
    engine.dispose()


def upgrade_schema(uri: str, *, newer_ok: bool = False) -> None:
    """`mlflow db upgrade` under the schema lock (configgen/container/migrate.py). A database
    migrated by a newer image is an error, or with `newer_ok` (a release phase during a
    rollback) logged and left alone."""
    with schema_lock(uri):
        say(f"running `mlflow db upgrade` on {where(uri)}")
        done = subprocess.run(
            [sys.executable, "-m", MIGRATE_MODULE],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, BACKEND_STORE_VARIABLE: uri},
        )
        for line in (done.stdout + done.stderr).splitlines():
            say(f"  {line.replace(uri, '<backend store URI>')}")
        if done.returncode == migrate.AHEAD:
            if newer_ok:
                say("left the schema as it is; this image's MLflow may refuse to serve it")
                return
            raise StackFailed(
                "the database was migrated by a newer MLflow than this image's; run the newer "
                "image, or restore a backup made before the upgrade"
            )
        if done.returncode != 0:
            raise StackFailed(f"`mlflow db upgrade` failed (exit code {done.returncode})")


def server_command(environ: Mapping[str, str], extra: list[str]) -> list[str]:
    workers = environ.get("MLFLOW_WORKERS", str(DEFAULT_WORKERS))
    port = environ.get("MLFLOW_PORT", str(DEFAULT_PORT))
    for name, value in (("MLFLOW_WORKERS", workers), ("MLFLOW_PORT", port)):
        if not value.isdigit() or int(value) < 1:
            raise UsageError(f"{name}: expected a positive integer, got {value!r}")
    listen = server_args(host="0.0.0.0", port=int(port), workers=int(workers))  # noqa: S104
    return [sys.executable, "-m", "mlflow", *listen, *extra]


def main(argv: list[str] | None = None, environ: MutableMapping[str, str] = os.environ) -> int:
    extra = sys.argv[1:] if argv is None else argv
    try:
        resolve_secret_files(environ)
        # Every setting is checked before anything happens, so that a typo stops the container
        # at once with its name.
        uri = backend_uri(environ)
        command = server_command(environ, extra)
        wait_seconds = environ.get("MLFLOW_DB_WAIT_SECONDS", "120")
        if not wait_seconds.isdigit():
            raise UsageError(f"MLFLOW_DB_WAIT_SECONDS: expected seconds, got {wait_seconds!r}")
        drop_privileges(environ)
        write_gcs_credentials(environ)
        environ.setdefault("MLFLOW_ARTIFACTS_DESTINATION", (HOME / "artifacts").as_uri())
        # Optional features stay off unless the runner (compose, EB) turns one on.
        for feature in FEATURES.values():
            environ.setdefault(feature.variable, "false")
        environ.update(ALWAYS_OFF)
        wait_for_database(uri, float(wait_seconds))
        upgrade_schema(uri)
    except ConfiggenError as err:
        say(f"error: {err}")
        return err.exit_code
    # Through the environment, not argv: `ps` in the container must not show the password.
    environ[BACKEND_STORE_VARIABLE] = uri
    say(f"starting mlflow server with its metadata at {where(uri)}")
    os.execve(command[0], command, environ)
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
