"""Real backing services for the tests, started on loopback in a temp folder: MariaDB (Debian's
`mariadb-server`) and an S3 endpoint (`moto_server`)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

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
