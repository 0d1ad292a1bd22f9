"""Bad input, through the real command line: exit code 2 (1 for a failed check), one line on
stderr naming the culprit, no traceback, and not a single file changed."""

from __future__ import annotations

import datetime
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from configgen import stack, tls
from tests.support import PASSWORD, clean_env, snapshot

USERS = "secrets/nginx/htpasswd"
# A valid cost-4 entry for alice, so that cases start from a real, working file.
ALICE = "alice:$2y$04$Dy5tA2k9AqRUTBXvCY5aAOhRyJtK4WEQvbbWuCgy0EpL4Jb.NUwh6\n"


@dataclass
class Case:
    args: list[str]
    message: str  # must appear in the one stderr line
    stdin: str | bytes | None = None
    files: dict[str, str | bytes] = field(default_factory=dict)  # written before the run
    env: dict[str, str] = field(default_factory=dict)
    code: int = 2
    entrypoint: bool = False  # the MLflow container's entrypoint instead of the CLI


def entry(message: str, **env: str) -> Case:
    """A bad setting of the MLflow container (its entrypoint exits 2 before doing anything)."""
    return Case([], f"mlflow-entrypoint: error: {message}", env=env, entrypoint=True)


def _tls_pair(names: list[str]) -> tuple[bytes, bytes]:
    settings = stack.parse(f"hosts: {names}", "x")
    return tls.self_signed(settings, datetime.datetime.now(datetime.UTC))


CERT, _ = _tls_pair(["mlflow.example.com"])
_, OTHER_KEY = _tls_pair(["mlflow.example.com"])
FILES_TLS = "hosts: [mlflow.example.com]\ntls: {mode: files, certificate: c.pem, key: k.pem}\n"


def add(name: str) -> list[str]:
    return ["htpasswd", "user", "add", name, "--password-stdin"]


CASES = {
    # user names
    "empty name": Case(add(""), "user name is empty", PASSWORD),
    "whitespace name": Case(add("   "), "user name is empty", PASSWORD),
    "name with colon": Case(add("bo:b"), "contains ':'", PASSWORD),
    "name with control char": Case(add("bo\x07b"), "contains a control character", PASSWORD),
    "name with newline": Case(add("bo\nb"), "contains a control character", PASSWORD),
    "name over 64 bytes": Case(add("é" * 33), "longer than 64 bytes", PASSWORD),
    "name with outer space": Case(add(" bob"), "starts or ends with whitespace", PASSWORD),
    "name like a comment": Case(add("#bob"), "starts with '#'", PASSWORD),
    # passwords
    "empty password": Case(add("bob"), "password is empty", "\n"),
    "short password": Case(add("bob"), "at least 12 (auth.min_password_length)", "short pass\n"),
    "73-byte password": Case(add("bob"), "73 bytes in UTF-8", "x" * 73 + "\n"),
    "37 two-byte chars": Case(add("bob"), "74 bytes in UTF-8", "é" * 37 + "\n"),
    "password with control char": Case(add("bob"), "control character", "correct\x00horse battery"),
    "password on argv": Case(
        ["htpasswd", "user", "add", "bob", PASSWORD], "unrecognized arguments"
    ),
    "no terminal, no stdin flag": Case(["htpasswd", "user", "add", "bob"], "--password-stdin", ""),
    "nothing on stdin": Case(add("bob"), "standard input is empty", ""),
    "stdin not UTF-8": Case(add("bob"), "not UTF-8", b"\xff\xfe password\n"),
    # the users in the file
    "add existing user": Case(
        add("alice"),
        "'alice' already exists; change the password with `configgen htpasswd user passwd alice`",
        PASSWORD,
        {USERS: ALICE},
    ),
    "remove unknown user": Case(
        ["htpasswd", "user", "remove", "zoe"], "no user 'zoe'", files={USERS: ALICE}
    ),
    "passwd unknown user": Case(
        ["htpasswd", "user", "passwd", "zoe", "--password-stdin"],
        "no user 'zoe'",
        PASSWORD,
        {USERS: ALICE},
    ),
    "verify unknown user": Case(
        ["htpasswd", "user", "verify", "zoe", "--password-stdin"],
        "no user 'zoe'",
        PASSWORD,
        {USERS: ALICE},
    ),
    "verify wrong password": Case(
        ["htpasswd", "user", "verify", "alice", "--password-stdin"],
        "wrong password for alice",
        "not the password\n",
        {USERS: ALICE},
        code=1,
    ),
    "list without a file": Case(["htpasswd", "user", "list"], "no htpasswd file"),
    # corrupt htpasswd files: reported with the line, never dropped on the next write
    "line without colon": Case(
        add("bob"), "line 2: not a 'name:hash' entry", PASSWORD, {USERS: ALICE + "garbage\n"}
    ),
    "line with empty hash": Case(
        ["htpasswd", "user", "remove", "alice"],
        "line 2: not a 'name:hash' entry",
        files={USERS: ALICE + "bob:\n"},
    ),
    "duplicate user": Case(
        ["htpasswd", "user", "list"],
        "line 3: user 'alice' is already on line 1",
        files={USERS: ALICE + "\n" + ALICE},
    ),
    "htpasswd not UTF-8": Case(
        add("bob"), "line 2: not UTF-8 text", PASSWORD, {USERS: ALICE.encode() + b"b\xffb:x\n"}
    ),
    "htpasswd is a folder": Case(
        ["htpasswd", "user", "list", "--htpasswd", "stack"], "cannot read the htpasswd file"
    ),
    # the stack file
    "workers not a number": Case(
        ["render"],
        "stack/stack.yaml: mlflow.workers: expected an integer >= 1, got 'two'",
        files={"stack/stack.yaml": "mlflow:\n  workers: two\n"},
    ),
    "unknown key": Case(
        ["render"],
        "stack/stack.yaml: proxy.prot: unknown key (did you mean 'port'?)",
        files={"stack/stack.yaml": "proxy:\n  prot: 80\n"},
    ),
    "port out of range": Case(
        ["render"],
        "proxy.port: expected an integer from 1 to 65535, got 99999",
        files={"stack/stack.yaml": "proxy: {port: 99999}\n"},
    ),
    "not YAML": Case(
        ["render"],
        "stack/stack.yaml: line 1, column 5: not valid YAML",
        files={"stack/stack.yaml": "a: b: c\n"},
    ),
    "stack not UTF-8": Case(
        ["render"], "stack/stack.yaml: not UTF-8 text", files={"stack/stack.yaml": b"\xff\xfe"}
    ),
    "unpinned image": Case(
        ["init"],
        "images.nginx: 'nginx:latest' uses the moving tag 'latest'",
        files={"stack/stack.yaml": "images: {nginx: 'nginx:latest'}\n"},
    ),
    "invalid bucket": Case(
        ["init"],
        "object_store.bucket: expected an S3 bucket name",
        files={"stack/stack.yaml": "object_store: {bucket: My_Bucket}\n"},
    ),
    "gunicorn opts": Case(
        ["render"],
        "mlflow.extra_args[0]: --gunicorn-opts is not allowed here",
        files={"stack/stack.yaml": "mlflow: {extra_args: ['--gunicorn-opts=-w 4']}\n"},
    ),
    "unknown MLflow feature": Case(
        ["render"],
        "mlflow.features[0]: expected gateway or jobs, got 'assistant'",
        files={"stack/stack.yaml": "mlflow: {features: [assistant]}\n"},
    ),
    "stale before expired": Case(
        ["render"],
        "auth.stale_seconds: 30 is below auth.cache_seconds (60)",
        files={"stack/stack.yaml": "auth: {stale_seconds: 30}\n"},
    ),
    "uvicorn opts": Case(
        ["render"],
        "mlflow.extra_args[0]: --uvicorn-opts is not allowed here",
        files={"stack/stack.yaml": "mlflow: {extra_args: ['--uvicorn-opts=--uds /x']}\n"},
    ),
    "password in backend URI": Case(
        ["render"],
        "mlflow.backend_store: holds a password",
        files={"stack/stack.yaml": "mlflow: {backend_store: 'mysql://u:pw@db/mlflow'}\n"},
    ),
    "weak minimum length": Case(
        add("bob"),
        "auth.min_password_length: expected an integer from 8 to 72, got 4",
        PASSWORD,
        {"stack/stack.yaml": "auth: {min_password_length: 4}\n"},
    ),
    "missing stack file": Case(["render", "--stack", "nope.yaml"], "nope.yaml: no such stack file"),
    "stack from environment missing": Case(
        ["init"], "elsewhere.yaml: no such stack file", env={"CONFIGGEN_STACK": "elsewhere.yaml"}
    ),
    # the command line and the environment
    "unknown command": Case(["rendr"], "invalid choice: 'rendr'"),
    "missing user name": Case(["htpasswd", "user", "remove"], "required: NAME"),
    "render out is a file": Case(["render", "--out", "stack/stack.yaml"], "stack/stack.yaml"),
    "secret twice in environment": Case(
        ["init"],
        "both MYSQL_PASSWORD and MYSQL_PASSWORD_FILE are set",
        env={"MYSQL_PASSWORD": "abc", "MYSQL_PASSWORD_FILE": "/dev/null"},
    ),
    "secret file missing": Case(
        ["init"],
        "MYSQL_ROOT_PASSWORD_FILE: cannot read /nonexistent/pw (No such file or directory)",
        env={"MYSQL_ROOT_PASSWORD_FILE": "/nonexistent/pw"},
    ),
    "secret with whitespace": Case(
        ["init"],
        "S3_SECRET_KEY: must be non-empty, without whitespace",
        env={"S3_SECRET_KEY": "two words"},
    ),
    # HTTPS
    "tls mode unknown": Case(
        ["render"],
        "tls.mode: expected self-signed, files or off, got 'letsencrypt'",
        files={"stack/stack.yaml": "tls: {mode: letsencrypt}\n"},
    ),
    "tls key of another certificate": Case(
        ["render"],
        "k.pem: this key does not match c.pem",
        files={"stack/stack.yaml": FILES_TLS, "c.pem": CERT, "k.pem": OTHER_KEY},
    ),
    "tls certificate missing": Case(
        ["render"], "c.pem: no TLS certificate", files={"stack/stack.yaml": FILES_TLS}
    ),
    "https and http on one port": Case(
        ["up", "--port", "9443", "--http-port", "9443"],
        "the HTTPS and HTTP ports are both 9443",
        files={"stack/stack.yaml": "tls: {mode: self-signed}\n"},
    ),
    "port zero": Case(["up", "--port", "0"], "expected a port from 1 to 65535, got '0'"),
    # Elastic Beanstalk
    "several instances on SQLite": Case(
        ["eb", "bundle"],
        "elastic_beanstalk.max_instances is 3 but mlflow.backend_store is `bundled`",
        files={
            "stack/stack.yaml": "elastic_beanstalk: {max_instances: 3}\ntls: {mode: off}\n"
            "mlflow: {artifact_destination: 's3://team-bucket/mlflow'}\n",
            USERS: ALICE,
        },
    ),
    "Elastic Beanstalk without HTTPS": Case(
        ["eb", "bundle"],
        "elastic_beanstalk.https_certificate is empty: the load balancer would take passwords "
        "over plain HTTP",
        files={"stack/stack.yaml": "auth: {bcrypt_cost: 4}\n", USERS: ALICE},
    ),
    "secret given as a value": Case(
        ["eb", "bundle"],
        "elastic_beanstalk.secrets.database_password: expected the ARN",
        files={"stack/stack.yaml": "elastic_beanstalk: {secrets: {database_password: hunter22}}\n"},
    ),
    "eb check without the zip": Case(["eb", "check", "dist/none.zip"], "none.zip: no such file"),
    "no hosts": Case(
        ["render"], "hosts: expected at least 1", files={"stack/stack.yaml": "hosts: []\n"}
    ),
    "artifact store unknown scheme": Case(
        ["render"],
        "mlflow.artifact_destination: expected 'bundled' or a URI starting with s3://",
        files={"stack/stack.yaml": "mlflow: {artifact_destination: 'ftp://files/mlflow'}\n"},
    ),
    # the MLflow container's environment
    "entrypoint unknown dialect": entry(
        "MLFLOW_DB_DIALECT: expected one of mysql, postgresql, mssql, got 'oracle'",
        MLFLOW_DB_DIALECT="oracle",
    ),
    "entrypoint database settings missing": entry(
        "MLFLOW_DB_DIALECT is mysql but MLFLOW_DB_USERNAME, MLFLOW_DB_PASSWORD, "
        "MLFLOW_DB_DATABASE not set",
        MLFLOW_DB_DIALECT="mysql",
        MLFLOW_DB_HOST="db",
    ),
    "entrypoint workers zero": entry(
        "MLFLOW_WORKERS: expected a positive integer, got '0'", MLFLOW_WORKERS="0"
    ),
    "entrypoint port text": entry(
        "MLFLOW_PORT: expected a positive integer, got 'http'", MLFLOW_PORT="http"
    ),
    "entrypoint secret file unreadable": entry(
        "MLFLOW_DB_PASSWORD_FILE: cannot read /nonexistent/db-password",
        MLFLOW_DB_PASSWORD_FILE="/nonexistent/db-password",  # noqa: S106 - a path
    ),
    "entrypoint secret twice": entry(
        "both MLFLOW_BACKEND_URI and MLFLOW_BACKEND_URI_FILE are set",
        MLFLOW_BACKEND_URI="sqlite:///x.db",
        MLFLOW_BACKEND_URI_FILE="/dev/null",
    ),
    "entrypoint wait not seconds": entry(
        "MLFLOW_DB_WAIT_SECONDS: expected seconds, got '2m'", MLFLOW_DB_WAIT_SECONDS="2m"
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_input(case: Case, configgen, project: Path):
    for name, content in case.files.items():
        path = project / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    before = snapshot(project)

    if case.entrypoint:
        foreign = ("MLFLOW_", "DATABASE_URL", "AWS_")  # this shell's, not the case's
        env = {k: v for k, v in clean_env(**case.env).items()
               if k in case.env or not k.startswith(foreign)}  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-m", "configgen.container.entrypoint"], cwd=project, env=env,
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    else:
        done = configgen(*case.args, stdin=case.stdin, **case.env)

    assert done.returncode == case.code, done.stderr
    assert case.message in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr  # one line
    assert "Traceback" not in done.stderr
    assert snapshot(project) == before


def test_at_least_thirty_cases():
    assert len(CASES) >= 30
    assert sum(case.entrypoint for case in CASES.values()) >= 5
