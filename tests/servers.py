"""Real backing services for the tests, started on loopback in a temp folder: MariaDB (Debian's
`mariadb-server`), PostgreSQL (Debian's `postgresql`) and an S3 endpoint (`moto_server`)."""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from configgen.waiting import wait_until
from tests.localstack import free_port


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def wait_for_port(port: int, process: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    def alive() -> None:
        assert process.poll() is None, f"{process.args[0]} exited:\n{log.read_text()}"

    wait_until(lambda: listening(port), timeout, f"{process.args[0]} is not listening on {port}",
               alive=alive)  # fmt: skip


@dataclass
class MariaDB:
    port: int
    socket: Path
    folder: Path
    user: str = "mlflow"
    password: str = "e2e-db-password-4f9c"  # a throw-away test server's, not a default
    database: str = "mlflow"
    process: subprocess.Popen | None = None

    def sql(self, statement: str) -> str:
        done = subprocess.run(
            ["mariadb", "--no-defaults", "-S", str(self.socket), "-u", "root", "-N", "-e",
             statement],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return done.stdout

    def start(self) -> None:
        """Start the server on its data folder and port (again, after stop())."""
        log = self.folder / "mariadb.log"
        self.process = subprocess.Popen(
            ["/usr/sbin/mariadbd", "--no-defaults", f"--datadir={self.folder / 'data'}",
             f"--socket={self.socket}", f"--port={self.port}", "--bind-address=127.0.0.1",
             "--user=root", f"--pid-file={self.folder / 'mariadb.pid'}", f"--log-error={log}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for_port(self.port, self.process, log)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=60)
            self.process = None


@contextmanager
def mariadb(folder: Path) -> Iterator[MariaDB]:
    """A MariaDB server with an `mlflow` database and user, as a DBA would hand it over."""
    for tool in ("mariadb-install-db", "mariadbd", "mariadb"):
        assert shutil.which(tool, path="/usr/bin:/usr/sbin"), "tests/run.sh installs mariadb"
    subprocess.run(
        ["mariadb-install-db", "--no-defaults", f"--datadir={folder / 'data'}", "--user=root",
         "--auth-root-authentication-method=socket", "--skip-test-db"],
        check=True, capture_output=True,
    )  # fmt: skip
    db = MariaDB(free_port(), folder / "mysqld.sock", folder)
    try:
        db.start()
        db.sql(
            f"CREATE DATABASE {db.database}; "
            f"CREATE USER '{db.user}'@'%' IDENTIFIED BY '{db.password}'; "
            f"GRANT ALL ON {db.database}.* TO '{db.user}'@'%';"
        )
        yield db
    finally:
        db.stop()


POSTGRES_USER = "postgres"  # the system user Debian's postgresql package makes


def postgres_bin() -> Path:
    """Debian's PostgreSQL programs (initdb, postgres): not on PATH, under a version folder."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    assert found, "tests/run.sh installs postgresql"
    return found[-1].parent


def as_postgres(*command: str) -> list[str]:
    """`command` as the `postgres` system user when we are root (the server refuses root)."""
    if os.geteuid() != 0:
        return list(command)
    return ["setpriv", f"--reuid={POSTGRES_USER}", f"--regid={POSTGRES_USER}", "--clear-groups",
            "--", *command]  # fmt: skip


@dataclass
class PostgreSQL:
    """A PostgreSQL server on loopback: `mlflow` logs in over TCP with a password
    (scram-sha-256); the superuser only over the unix socket in the server's own folder."""

    port: int
    folder: Path
    password: str
    user: str = "mlflow"
    database: str = "mlflow"
    superuser: str = POSTGRES_USER
    process: subprocess.Popen | None = None

    @property
    def socket_dir(self) -> Path:
        return self.folder / "run"

    def uri(self, database: str | None = None, password: bool = True) -> str:
        """postgresql://mlflow:PASSWORD@127.0.0.1:PORT/DATABASE (without the password when
        `password` is false: the form a stack file holds)."""
        secret = f":{quote(self.password, safe='')}" if password else ""
        return f"postgresql://{self.user}{secret}@127.0.0.1:{self.port}/{database or self.database}"

    def connect(self, database: str | None = None, admin: bool = False):
        """A psycopg2 connection (autocommit) as `mlflow` over TCP, or as the superuser."""
        import psycopg2

        if admin:
            where = {"host": str(self.socket_dir), "user": self.superuser}
            conn = psycopg2.connect(port=self.port, dbname=database or "postgres", **where)
        else:
            where = {"host": "127.0.0.1", "user": self.user, "password": self.password}
            conn = psycopg2.connect(port=self.port, dbname=database or self.database, **where)
        conn.autocommit = True
        return conn

    def sql(self, statement: str, database: str | None = None, admin: bool = False) -> list[tuple]:
        """The rows `statement` returns (none for a statement that returns none)."""
        conn = self.connect(database, admin)
        try:
            with conn.cursor() as cursor:
                cursor.execute(statement)
                return cursor.fetchall() if cursor.description else []
        finally:
            conn.close()

    def create_database(self, name: str) -> str:
        """A fresh, empty database owned by `mlflow`; its URI (with the password)."""
        self.sql(f'CREATE DATABASE "{name}" OWNER "{self.user}"', admin=True)
        return self.uri(name)

    def _ready(self) -> bool:
        import psycopg2

        try:
            self.connect(admin=True).close()
        except psycopg2.OperationalError:  # not listening yet, or still starting up
            return False
        return True

    def start(self) -> None:
        """Start the server on its data folder and port (again, after stop())."""
        log = self.folder / "postgres.log"
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                as_postgres(str(postgres_bin() / "postgres"), "-D", str(self.folder / "data"),
                            "-c", "listen_addresses=127.0.0.1", "-c", f"port={self.port}",
                            "-c", f"unix_socket_directories={self.socket_dir}",
                            # A throw-away server: no waiting for the disk.
                            "-c", "fsync=off", "-c", "synchronous_commit=off"),
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        process = self.process

        def alive() -> None:
            assert process.poll() is None, f"postgres exited:\n{log.read_text()}"

        wait_until(self._ready, 60, f"postgres does not answer on {self.port}", interval=0.2,
                   alive=alive)  # fmt: skip

    def stop(self) -> None:
        if self.process is not None:
            # SIGINT, postgres's "fast" shutdown: clients still connected do not hold it up.
            self.process.send_signal(signal.SIGINT)
            self.process.wait(timeout=60)
            self.process = None


@contextmanager
def postgresql() -> Iterator[PostgreSQL]:
    """A PostgreSQL server with an `mlflow` database and user, as a DBA would hand it over;
    its folder (under /tmp, owned by the server's user) is removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="postgres-", dir="/tmp"))
    try:
        if os.geteuid() == 0:
            owner = pwd.getpwnam(POSTGRES_USER)
            os.chown(folder, owner.pw_uid, owner.pw_gid)
        (folder / "run").mkdir()
        if os.geteuid() == 0:
            os.chown(folder / "run", owner.pw_uid, owner.pw_gid)
        # Characters a URI must escape, so that every way the password travels is tried.
        password = f"pg-{secrets.token_hex(8)}-@:/%?#"
        subprocess.run(
            as_postgres(str(postgres_bin() / "initdb"), "-D", str(folder / "data"),
                        "--username", POSTGRES_USER, "--auth-local=trust",
                        "--auth-host=scram-sha-256", "--encoding=UTF8", "--no-instructions"),
            check=True, capture_output=True,
        )  # fmt: skip
        db = PostgreSQL(free_port(), folder, password)
        try:
            db.start()
            conn = db.connect(admin=True)
            with conn.cursor() as cursor:
                cursor.execute(f'CREATE ROLE "{db.user}" LOGIN PASSWORD %s', (db.password,))
                cursor.execute(f'CREATE DATABASE "{db.database}" OWNER "{db.user}"')
            conn.close()
            yield db
        finally:
            db.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class S3Endpoint:
    url: str
    access_key: str
    secret_key: str


# The IAM calls that make the one user of moto_s3's endpoint: moto answers this many without
# checking anything, and checks the signature and the permissions of every call after them.
_SETUP_CALLS = 3


@contextmanager
def moto_s3(folder: Path) -> Iterator[S3Endpoint]:
    """An S3 HTTP endpoint on loopback that, like a real one, accepts only requests signed
    with a key it issued (moto's IAM authentication: INITIAL_NO_AUTH_ACTION_COUNT); yields
    its URL and the key (an IAM user's, allowed every S3 action)."""
    import boto3

    port = free_port()
    log = folder / "moto.log"
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(_SETUP_CALLS)}
    with log.open("wb") as out:
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    try:
        wait_for_port(port, server, log)
        url = f"http://127.0.0.1:{port}"
        # Any key for the calls moto does not check (there is none to sign with yet).
        unchecked = {"aws_access_key_id": "setup", "aws_secret_access_key": "setup"}
        iam = boto3.client("iam", endpoint_url=url, region_name="us-east-1", **unchecked)
        iam.create_user(UserName="mlflow")
        iam.put_user_policy(UserName="mlflow", PolicyName="s3", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }))  # fmt: skip
        key = iam.create_access_key(UserName="mlflow")["AccessKey"]
        yield S3Endpoint(url, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        server.terminate()
        server.wait(timeout=30)
