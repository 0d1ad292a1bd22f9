"""PostgreSQL as a backend store: the local stack against a real server, the migration lock of
the image's entrypoint, and the `DATABASE_URL` a platform hands out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from urllib.parse import quote

import pytest
from sqlalchemy.engine import make_url

from configgen import procfs
from configgen.container import entrypoint
from configgen.container.database_url import sqlalchemy_url, with_driver
from configgen.errors import UsageError
from configgen.values import check_backend_store
from configgen.waiting import wait_until
from tests import mlflow_flow
from tests.localstack import local_stack
from tests.support import REPO

# --- the local runner on PostgreSQL ----------------------------------------------------------


def test_the_local_stack_keeps_its_metadata_in_postgresql(postgres, tmp_path_factory):
    project = tmp_path_factory.mktemp("project")
    work = tmp_path_factory.mktemp("work")
    # The stack file names the user, not the password; MLFLOW_DB_PASSWORD gives it, as it
    # does for MariaDB (tests/test_e2e_mariadb_s3.py).
    stack_yaml = (
        "hosts: [mlflow.example.com]\n"
        "auth: {bcrypt_cost: 4}\n"
        "mlflow:\n"
        f"  backend_store: {postgres.uri(password=False)}\n"
    )
    assert postgres.password not in stack_yaml
    # PYTHONPATH: `configgen up` runs in the project folder, where `-m configgen` would find
    # the installed package, which may be another checkout's (a git worktree's venv).
    with local_stack(project, stack_yaml, MLFLOW_DB_PASSWORD=postgres.password,
                     PYTHONPATH=str(REPO)) as stack:  # fmt: skip
        up_log = (stack.data / "logs" / "up.log").read_text()
        for secret in (postgres.password, quote(postgres.password, safe="")):
            assert secret not in up_log
        mlflow_flow.exercise(stack, work, "postgres")
        supervisor = int((stack.data / "up.pid").read_text())
        titles = [t for pid in procfs.descendants(supervisor) if (t := procfs.command_line(pid))]
        assert any(b"uvicorn" in title for title in titles), titles
        for title in titles:
            assert quote(postgres.password, safe="").encode() not in title, title
            assert postgres.password.encode() not in title, title
        # MLflow's connections while it serves: to PostgreSQL, as the stack file's user.
        users = postgres.sql(
            "SELECT DISTINCT usename FROM pg_stat_activity WHERE datname = 'mlflow' "
            "AND pid <> pg_backend_pid()"
        )
        assert users == [("mlflow",)]

    # The metadata is in PostgreSQL ...
    experiments = [name for (name,) in postgres.sql("SELECT name FROM experiments")]
    assert "postgres" in experiments
    assert postgres.sql("SELECT COUNT(*) FROM metrics WHERE key = 'loss'") == [(1000,)]
    assert postgres.sql("SELECT key, value FROM params ORDER BY key") == [
        ("layers", "3"),
        ("lr", "0.01"),
    ]
    assert postgres.sql("SELECT name FROM registered_models") == [("postgres-model",)]
    assert len(postgres.sql("SELECT version_num FROM alembic_version")) == 1
    # ... not in a SQLite file beside the stack.
    assert not (project / "data" / "mlflow.db").exists()


# --- the entrypoint's migration lock ---------------------------------------------------------

# One replica's `upgrade_schema`, with the moments it held the lock written to a file: what
# two of them did can then be compared.
REPLICA = """
import contextlib, json, os, sys, time
from configgen.container import entrypoint

held = []
real_lock = entrypoint.schema_lock

@contextlib.contextmanager
def timed_lock(uri):
    with real_lock(uri):
        start = time.time()
        yield
        held.append([start, time.time()])

entrypoint.schema_lock = timed_lock
entrypoint.upgrade_schema(os.environ["TEST_BACKEND_URI"])
with open(sys.argv[1], "w") as f:
    json.dump(held, f)
"""


def _advisory_lock(database: str) -> str:
    """pg_locks' rows for the entrypoint's advisory lock in `database` (its bigint key is
    shown as classid, the high 32 bits, and objid, the low ones)."""
    return (
        "FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
        f"WHERE l.locktype = 'advisory' AND d.datname = '{database}' "
        f"AND l.classid = {entrypoint.SCHEMA_LOCK_KEY >> 32} "
        f"AND l.objid = {entrypoint.SCHEMA_LOCK_KEY & 0xFFFFFFFF} AND l.objsubid = 1"
    )


def _waiting_for_the_schema_lock(postgres, database: str) -> int:
    """How many sessions wait for the entrypoint's lock."""
    ((count,),) = postgres.sql(f"SELECT count(*) {_advisory_lock(database)} AND NOT l.granted")
    return count


def _has_schema(postgres, database: str) -> bool:
    ((found,),) = postgres.sql("SELECT to_regclass('public.alembic_version') IS NOT NULL",
                               database)  # fmt: skip
    return found


def test_replicas_upgrading_together_take_turns(postgres, tmp_path):
    database = "lock_turns"
    uri = with_driver(postgres.create_database(database))  # as the entrypoint gets it
    # A third session takes the lock first: while it holds the key, no upgrade may start.
    holder = postgres.connect(database)
    with holder.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", (entrypoint.SCHEMA_LOCK_KEY,))
    replicas = []
    for name in ("a", "b"):
        log = (tmp_path / f"{name}.log").open("wb")
        replicas.append(
            subprocess.Popen(
                [sys.executable, "-c", REPLICA, str(tmp_path / f"{name}.json")],
                cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "TEST_BACKEND_URI": uri},  # not in argv: `ps` shows that
            )
        )

    def alive() -> None:
        for replica in replicas:
            assert replica.poll() is None, (tmp_path / "a.log").read_text() + (
                tmp_path / "b.log"
            ).read_text()

    try:
        wait_until(lambda: _waiting_for_the_schema_lock(postgres, database) == 2, 60,
                   "both replicas wait for the schema lock", interval=0.2, alive=alive)  # fmt: skip
        time.sleep(1)  # long enough for an upgrade that ignored the lock to make its table
        assert not _has_schema(postgres, database)
        assert all(replica.poll() is None for replica in replicas)
    finally:
        holder.close()  # releases the lock
    for replica in replicas:
        assert replica.wait(timeout=300) == 0, (tmp_path / "a.log").read_text() + (
            tmp_path / "b.log"
        ).read_text()

    windows = sorted(
        window
        for name in ("a", "b")
        for window in json.loads((tmp_path / f"{name}.json").read_text())
    )
    assert len(windows) == 2
    (first_start, first_end), (second_start, second_end) = windows
    assert first_start < first_end <= second_start < second_end  # one after the other
    # Both ran `mlflow db upgrade`; the second found the schema at the head and was done.
    for name in ("a", "b"):
        assert "running `mlflow db upgrade` on 127.0.0.1:" in (tmp_path / f"{name}.log").read_text()
    assert _has_schema(postgres, database)
    assert len(postgres.sql("SELECT version_num FROM alembic_version", database)) == 1
    assert _waiting_for_the_schema_lock(postgres, database) == 0


def test_the_lock_is_the_advisory_lock_on_the_named_key(postgres):
    """schema_lock holds pg_advisory_lock(SCHEMA_LOCK_KEY) in its own session while its
    body runs, and lets it go afterwards."""
    database = "lock_key"
    uri = with_driver(postgres.create_database(database))

    def held() -> list[tuple]:
        return postgres.sql(f"SELECT l.granted {_advisory_lock(database)}")

    assert held() == []
    with entrypoint.schema_lock(uri):
        assert held() == [(True,)]
        # and not inside a transaction left open (idle-in-transaction timeouts end those)
        states = postgres.sql(
            f"SELECT state FROM pg_stat_activity WHERE datname = '{database}' "  # noqa: S608
            "AND pid <> pg_backend_pid()"
        )
        assert states == [("idle",)]
    assert held() == []


# --- DATABASE_URL, as platforms hand it out --------------------------------------------------

SPECIAL = "p%40ss%2Fw%3Ard%25!$&'()*+,;=~"  # percent-escapes and sub-delims, as given
PG = "postgresql+psycopg2"  # psycopg2 is the driver installed: SQLAlchemy 2.1's default is not


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@postgres.internal:5432/postgres",
         f"{PG}://u:p@postgres.internal:5432/postgres"),
        ("postgres://postgres:postgres@postgres/postgres",
         f"{PG}://postgres:postgres@postgres/postgres"),
        # Not postgresqlql:// (the seed's ${DATABASE_URL/postgres/postgresql}).
        ("postgresql://u:p@h:5432/db", f"{PG}://u:p@h:5432/db"),
        ("postgresql+psycopg2://u:p@h/db", "postgresql+psycopg2://u:p@h/db"),
        ("postgres+psycopg2://u:p@h/db", "postgresql+psycopg2://u:p@h/db"),
        ("mysql://u:p@h:3306/db", "mysql+pymysql://u:p@h:3306/db"),
        ("mysql+pymysql://u:p@h/db", "mysql+pymysql://u:p@h/db"),
        ("POSTGRES://U:P@H.example/DB", f"{PG}://U:P@H.example/DB"),
        ("PostgreSQL://u:p@h/db", f"{PG}://u:p@h/db"),
        ("MySQL://u:p@h/db", "mysql+pymysql://u:p@h/db"),
        ("postgres://u:p@[2001:db8::1]:5432/db", f"{PG}://u:p@[2001:db8::1]:5432/db"),
        ("postgres://u:p@h/db?sslmode=require&application_name=mlflow",
         f"{PG}://u:p@h/db?sslmode=require&application_name=mlflow"),
        ("postgres://h/db", f"{PG}://h/db"),
        (f"postgres://u:{SPECIAL}@h:5432/db", f"{PG}://u:{SPECIAL}@h:5432/db"),
        # Raw ":" "/" "?" "#" in a password: SQLAlchemy takes everything up to the "@".
        ("postgres://u:a:b/c?d#e@h/db", f"{PG}://u:a:b/c?d#e@h/db"),
    ],
)  # fmt: skip
def test_database_url_gets_only_its_scheme_rewritten(given, expected):
    assert sqlalchemy_url(given) == expected
    assert expected.partition("://")[2] == given.partition("://")[2]  # byte for byte
    assert make_url(expected).get_dialect().driver in ("psycopg2", "pymysql")


def test_sqlalchemy_would_pick_a_driver_that_is_not_installed():
    """Why the driver is named: SQLAlchemy's own choice for a bare scheme is not psycopg2."""
    assert make_url("postgresql://u@h/db").get_dialect().driver != "psycopg2"
    assert make_url("mysql://u@h/db").get_dialect().driver != "pymysql"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://mlflow@db:5432/mlflow", f"{PG}://mlflow@db:5432/mlflow"),
        ("POSTGRESQL://mlflow@db/mlflow", f"{PG}://mlflow@db/mlflow"),
        ("mysql://mlflow@db/mlflow", "mysql+pymysql://mlflow@db/mlflow"),
        ("postgresql+psycopg2://mlflow@db/mlflow", "postgresql+psycopg2://mlflow@db/mlflow"),
        ("mysql+pymysql://mlflow@db/mlflow", "mysql+pymysql://mlflow@db/mlflow"),
        ("mssql+pyodbc://mlflow@db/mlflow", "mssql+pyodbc://mlflow@db/mlflow"),
        ("sqlite:////var/lib/mlflow/mlflow.db", "sqlite:////var/lib/mlflow/mlflow.db"),
        ("bundled", "bundled"),
    ],
)
def test_with_driver_names_the_installed_driver_only_where_none_is_named(given, expected):
    assert with_driver(given) == expected


def test_database_url_keeps_names_and_the_password_as_sqlalchemy_reads_them():
    url = make_url(sqlalchemy_url(f"postgres://mlflow:{SPECIAL}@postgres.internal:6543/postgres"))
    assert (url.drivername, url.username, url.host, url.port, url.database) == (
        PG, "mlflow", "postgres.internal", 6543, "postgres",
    )  # fmt: skip
    assert url.password == "p@ss/w:rd%!$&'()*+,;=~"


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("redis://u:secret@h:6379/0", "the scheme 'redis' is not a database"),
        ("sqlite:////tmp/secret.db", "the scheme 'sqlite' is not a database"),
        ("mssql://u:secret@h/db", "the scheme 'mssql' is not a database"),
        ("postgresqlql://u:secret@h/db", "the scheme 'postgresqlql' is not a database"),
        ("postgres:///secret", "names no host"),
        ("postgres://u:secret@/db", "names no host"),
        ("postgres://u:secret@:5432/db", "names no host"),
        ("postgres://u:secret@[]:5432/db", "names no host"),
        ("u:secret@h:5432/db", "not a database URL"),
        ("postgres:/u:secret@h/db", "not a database URL"),
        (" postgres://u:secret@h/db", "not a database URL"),
    ],
)
def test_database_url_refused_in_one_line_without_the_url(given, says):
    with pytest.raises(UsageError) as refused:
        sqlalchemy_url(given)
    message = str(refused.value)
    assert message.startswith("DATABASE_URL: ")
    assert says in message
    assert "\n" not in message
    assert "secret" not in message
    assert given not in message


def test_database_url_errors_name_the_variable_they_are_given():
    with pytest.raises(UsageError, match=r"^HEROKU_POSTGRESQL_RED_URL: "):
        sqlalchemy_url("redis://h/0", "HEROKU_POSTGRESQL_RED_URL")


def test_the_entrypoint_rewrites_database_url_and_refuses_a_wrong_one(capsys):
    assert entrypoint.backend_uri({"DATABASE_URL": "POSTGRES://u:p@db.internal/postgres"}) == (
        f"{PG}://u:p@db.internal/postgres"
    )
    assert entrypoint.backend_uri({"DATABASE_URL": "mysql://u:p@db/mlflow"}) == (
        "mysql+pymysql://u:p@db/mlflow"
    )
    environ = {"DATABASE_URL": "redis://default:hunter2-secret@cache.internal:6379"}
    assert entrypoint.main([], environ) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "mlflow-entrypoint: error: DATABASE_URL: the scheme 'redis' is not a database MLflow "
        "can use here; expected one of postgres://, postgresql://, postgres+psycopg2://, "
        "postgresql+psycopg2://, mysql://, mysql+pymysql://"
    ]
    assert "hunter2" not in err and "cache.internal" not in err


def test_postgres_uris_of_the_image_and_the_stack_file_are_accepted():
    """The image's dialect form gives PostgreSQL with psycopg2 on 5432; a stack file may name
    postgresql:// (without a password) but not Heroku's postgres://."""
    uri = entrypoint.backend_uri({
        "MLFLOW_DB_DIALECT": "postgresql", "MLFLOW_DB_HOST": "db", "MLFLOW_DB_USERNAME": "mlflow",
        "MLFLOW_DB_PASSWORD": "p@ss", "MLFLOW_DB_DATABASE": "mlflow",
    })  # fmt: skip
    assert uri == f"{PG}://mlflow:p%40ss@db:5432/mlflow"
    # A URI given whole gets the driver too, and the password given apart.
    given = {"MLFLOW_BACKEND_URI": "postgresql://mlflow@db/mlflow", "MLFLOW_DB_PASSWORD": "p@ss"}
    assert entrypoint.backend_uri(given) == f"{PG}://mlflow:p%40ss@db/mlflow"
    assert check_backend_store("postgresql://mlflow@db.internal:5432/mlflow") is None
    assert check_backend_store("postgresql+psycopg2://mlflow@db.internal/mlflow") is None
    assert "holds a password" in check_backend_store("postgresql://mlflow:pw@db/mlflow")
    assert "expected 'bundled' or a database URI" in check_backend_store("postgres://m@db/mlflow")
