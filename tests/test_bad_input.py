"""Bad input, through the real command line: exit code 2 (1 for a failed check), one line on
stderr naming the culprit, no traceback, and not a single file changed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support import PASSWORD, snapshot

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

    done = configgen(*case.args, stdin=case.stdin, **case.env)

    assert done.returncode == case.code, done.stderr
    assert case.message in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr  # one line
    assert "Traceback" not in done.stderr
    assert snapshot(project) == before


def test_at_least_thirty_cases():
    assert len(CASES) >= 30
