"""The MLflow container's entrypoint: how settings become a backend URI, GCS credentials and
the server command, and its schema upgrade against real databases. The container itself is
tested in test_compose.py."""

from __future__ import annotations

import base64
import json
import stat
import threading
import time
from pathlib import Path

import pytest

from configgen import procfs
from configgen.container import entrypoint
from configgen.errors import UsageError
from tests.servers import mariadb

DB = {
    "MLFLOW_DB_DIALECT": "mysql",
    "MLFLOW_DB_HOST": "database",
    "MLFLOW_DB_USERNAME": "mlflow",
    "MLFLOW_DB_PASSWORD": "p@ss:w/rd?",
    "MLFLOW_DB_DATABASE": "mlflow",
}


@pytest.mark.parametrize(
    ("environ", "uri"),
    [
        ({"MLFLOW_BACKEND_URI": "postgresql://u:p@h/db", **DB}, "postgresql+psycopg2://u:p@h/db"),
        ({"DATABASE_URL": "postgres://u:p@h:5432/db"}, "postgresql+psycopg2://u:p@h:5432/db"),
        ({"DATABASE_URL": "mysql+pymysql://u:p@h/db", **DB}, "mysql+pymysql://u:p@h/db"),
        (DB, "mysql+pymysql://mlflow:p%40ss%3Aw%2Frd%3F@database:3306/mlflow"),
        ({**DB, "MLFLOW_DB_DIALECT": "postgresql", "MLFLOW_DB_PORT": "6543"},
         "postgresql+psycopg2://mlflow:p%40ss%3Aw%2Frd%3F@database:6543/mlflow"),
        ({}, "sqlite:////var/lib/mlflow/mlflow.db"),
        # A URI without its password, the password apart (as the compose file gives them).
        ({"MLFLOW_BACKEND_URI": "mysql+pymysql://mlflow@db.internal/ml",
          "MLFLOW_DB_PASSWORD": "s3cret/"}, "mysql+pymysql://mlflow:s3cret%2F@db.internal/ml"),
    ],
)  # fmt: skip
def test_backend_uri(environ: dict, uri: str):
    assert entrypoint.backend_uri(environ) == uri


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({**DB, "MLFLOW_DB_DIALECT": "oracle"}, "MLFLOW_DB_DIALECT: expected one of mysql"),
        ({"MLFLOW_DB_DIALECT": "mysql", "MLFLOW_DB_HOST": "h"},
         "MLFLOW_DB_USERNAME, MLFLOW_DB_PASSWORD, MLFLOW_DB_DATABASE not set"),
        ({**DB, "MLFLOW_DB_PORT": "three"}, "MLFLOW_DB_PORT: expected a port number"),
    ],
)  # fmt: skip
def test_backend_uri_errors_never_show_the_password(environ: dict, message: str):
    with pytest.raises(UsageError, match=message) as raised:
        entrypoint.backend_uri(environ)
    assert "p@ss" not in str(raised.value)


def test_where_hides_credentials():
    assert entrypoint.where("mysql+pymysql://u:secret@db:3306/x") == "db:3306"
    assert entrypoint.where("sqlite:////var/lib/mlflow/mlflow.db") == "//var/lib/mlflow/mlflow.db"


def test_secret_files_become_variables(tmp_path: Path):
    (tmp_path / "pw").write_text("from-file\n")
    environ = {"MLFLOW_DB_PASSWORD_FILE": str(tmp_path / "pw"), "UNRELATED_FILE": "/x"}
    entrypoint.resolve_secret_files(environ)
    assert environ == {"MLFLOW_DB_PASSWORD": "from-file", "UNRELATED_FILE": "/x"}
    with pytest.raises(UsageError, match="both AWS_ACCESS_KEY_ID and AWS_ACCESS_KEY_ID_FILE"):
        entrypoint.resolve_secret_files({"AWS_ACCESS_KEY_ID": "a", "AWS_ACCESS_KEY_ID_FILE": "b"})


@pytest.mark.parametrize("form", ["json", "base64"])
def test_gcs_credentials_go_to_a_private_file(form: str, capsys):
    credentials = json.dumps({"type": "service_account", "private_key": "-----BEGIN..."})
    environ = (
        {"GOOGLE_APPLICATION_CREDENTIALS_JSON": credentials}
        if form == "json"
        else {"GOOGLE_AUTH_STRING": base64.b64encode(credentials.encode()).decode()}
    )
    entrypoint.write_gcs_credentials(environ)
    path = Path(environ.pop("GOOGLE_APPLICATION_CREDENTIALS"))
    assert environ == {}  # the inline forms are gone from what mlflow server inherits
    assert path.read_text() == credentials
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert "BEGIN" not in capsys.readouterr().err


def test_gcs_credentials_errors():
    with pytest.raises(UsageError, match="GOOGLE_AUTH_STRING: not base64"):
        entrypoint.write_gcs_credentials({"GOOGLE_AUTH_STRING": "%%%"})
    with pytest.raises(UsageError, match=r"GOOGLE_APPLICATION_CREDENTIALS_JSON: .* not JSON"):
        entrypoint.write_gcs_credentials({"GOOGLE_APPLICATION_CREDENTIALS_JSON": "{nope"})


def test_server_command():
    command = entrypoint.server_command({"MLFLOW_WORKERS": "3", "MLFLOW_PORT": "5001"}, ["--dev"])
    assert command[1:] == [
        "-m", "mlflow", "server", "--host", "0.0.0.0", "--port", "5001", "--workers", "3",
        "--serve-artifacts", "--dev",
    ]  # fmt: skip
    with pytest.raises(UsageError, match="MLFLOW_WORKERS: expected a positive integer"):
        entrypoint.server_command({"MLFLOW_WORKERS": "0"}, [])


def test_sqlite_wait_lock_and_upgrade(tmp_path: Path, capsys):
    """The real `mlflow db upgrade` on a fresh SQLite file, under the schema lock."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    entrypoint.wait_for_database(uri, 5)
    entrypoint.upgrade_schema(uri)
    entrypoint.upgrade_schema(uri)  # idempotent
    assert (tmp_path / "mlflow.db").stat().st_size > 0
    assert "running `mlflow db upgrade`" in capsys.readouterr().err


def test_unreachable_database_gives_up_in_time():
    from configgen.errors import StackFailed

    with pytest.raises(StackFailed, match=r"the database at 127.0.0.1:1 did not answer within 2 s"):
        entrypoint.wait_for_database("mysql+pymysql://u:secret@127.0.0.1:1/db", 2)


def test_replicas_starting_together_take_turns_on_the_schema(tmp_path: Path):
    """Three entrypoints upgrade one fresh MariaDB database at once; the lock serialises
    them (without it, concurrent table creation fails with "table already exists")."""
    import subprocess
    import sys

    from tests.servers import mariadb

    with mariadb(tmp_path) as db:
        uri = f"mysql+pymysql://{db.user}:{db.password}@127.0.0.1:{db.port}/{db.database}"
        code = "import sys, configgen.container.entrypoint as e; e.upgrade_schema(sys.argv[1])"
        replicas = [
            subprocess.Popen([sys.executable, "-c", code, uri], stderr=subprocess.PIPE, text=True)
            for _ in range(3)
        ]
        errors = [r.communicate(timeout=300)[1] for r in replicas]
        assert [r.returncode for r in replicas] == [0, 0, 0], errors
        assert all(db.password not in e for e in errors)
        assert "alembic_version" in db.sql("SHOW TABLES FROM mlflow")
        assert db.sql("SELECT COUNT(*) FROM mlflow.alembic_version").strip() == "1"


def test_the_schema_upgrade_shows_no_password_to_ps(tmp_path: Path, capsys):
    """`mlflow db upgrade` against a real MariaDB, while every process's arguments are read
    from /proc as `ps` does: the URI (and its password) is never among them."""
    with mariadb(tmp_path) as db:
        uri = f"mysql+pymysql://{db.user}:{db.password}@127.0.0.1:{db.port}/{db.database}"
        done = threading.Event()
        seen: list[bytes] = []

        def watch() -> None:
            while not done.is_set():
                seen.extend(procfs.command_line(pid) for pid in procfs.pids())
                time.sleep(0.02)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            entrypoint.upgrade_schema(uri)
        finally:
            done.set()
            watcher.join()
        assert int(db.sql("SELECT COUNT(*) FROM mlflow.alembic_version")) == 1
    assert any(b"configgen.container.migrate" in title for title in seen)  # it was watched
    assert not [title for title in seen if db.password.encode() in title]
    assert db.password not in capsys.readouterr().err
