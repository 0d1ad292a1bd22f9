"""The platform image's settings from the environment (configgen/container/platform_env.py):
what is accepted, and every malformed setting refused by the image's own command with one
line naming the variable, exit code 2, no traceback and no secret in the output."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest
from passlib.apache import HtpasswdFile

from configgen.container import platform_env, users
from tests.support import REPO

PASSWORD = "a-secret-password-61"
DB_PASSWORD = "db-secret-77"


def bcrypt_users(*names: str) -> str:
    file = HtpasswdFile(default_scheme="bcrypt")
    for name in names:
        file.set_password(name, PASSWORD)
    return file.to_string().decode()


USERS = bcrypt_users("alice", "bob")
GOOD = {
    "PORT": "8080",
    "DATABASE_URL": f"postgres://mlflow:{DB_PASSWORD}@db.internal:5432/mlflow",
    "MLFLOW_HTPASSWD": USERS,
    "MLFLOW_ARTIFACTS_DESTINATION": "s3://team-artifacts/mlflow",
}


def test_a_heroku_environment_is_read():
    settings = platform_env.read(GOOD, memory_mb=512)
    assert settings.port == 8080
    assert settings.database_url == f"postgresql+psycopg2://mlflow:{DB_PASSWORD}@db.internal:5432/mlflow"
    assert settings.htpasswd.splitlines() == USERS.splitlines()
    assert settings.workers == 1  # what fits a 512 MB dyno
    assert settings.data_dir == Path("/tmp/mlflow")
    assert PASSWORD not in repr(settings) and DB_PASSWORD not in repr(settings.s3)


def test_users_pasted_on_one_line_are_split_back():
    """The Deploy button's form field keeps a pasted file on one line."""
    settings = platform_env.read(GOOD | {"MLFLOW_HTPASSWD": USERS.replace("\n", " ")})
    assert settings.htpasswd.splitlines() == USERS.splitlines()
    assert users.check(USERS) == ["alice", "bob"]


@pytest.mark.parametrize(("megabytes", "workers"), [(512, 1), (1024, 2), (2560, 4), (14336, 4)])
def test_workers_follow_the_memory(megabytes: int, workers: int):
    assert platform_env.workers_for_memory(megabytes) == workers
    assert platform_env.read(GOOD, memory_mb=megabytes).workers == workers


def test_web_concurrency_wins_over_the_memory():
    assert platform_env.read(GOOD | {"WEB_CONCURRENCY": "3"}, memory_mb=512).workers == 3


def test_the_cgroup_limit_is_read(tmp_path: Path):
    (tmp_path / "memory.max").write_text("536870912\n")
    assert platform_env.container_memory(tmp_path) == 512
    (tmp_path / "memory.max").write_text("max\n")
    assert platform_env.container_memory(tmp_path) is None


def test_gcs_credentials_as_json_or_base64():
    key = json.dumps({"type": "service_account", "private_key": "-----BEGIN..."})
    for given in (key, base64.b64encode(key.encode()).decode()):
        settings = platform_env.read(GOOD | {"GOOGLE_APPLICATION_CREDENTIALS_JSON": given})
        assert json.loads(settings.gcs_credentials or "") == json.loads(key)


def test_secrets_from_files(tmp_path: Path):
    (tmp_path / "users").write_text(USERS)
    (tmp_path / "db").write_text(GOOD["DATABASE_URL"] + "\n")
    environ = {k: v for k, v in GOOD.items() if k not in ("MLFLOW_HTPASSWD", "DATABASE_URL")}
    environ |= {"MLFLOW_HTPASSWD_FILE": str(tmp_path / "users"),
                "DATABASE_URL_FILE": str(tmp_path / "db")}  # fmt: skip
    settings = platform_env.read(environ)
    assert settings.database_url.startswith("postgresql+psycopg2://mlflow:")


APR1 = "alice:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/"
# Each: what is changed, the variable the one line must name. Values that are secret are
# checked not to appear in the output.
BAD = [
    ({"PORT": None}, "PORT"),
    ({"PORT": "http"}, "PORT"),
    ({"PORT": "70000"}, "PORT"),
    ({"DATABASE_URL": None}, "DATABASE_URL"),
    ({"DATABASE_URL": f"redis://u:{DB_PASSWORD}@cache:6379/0"}, "DATABASE_URL"),
    ({"DATABASE_URL": f"postgres://u:{DB_PASSWORD}@/mlflow"}, "DATABASE_URL"),
    ({"DATABASE_URL": None, "DATABASE_URL_FILE": "/nonexistent/url"}, "DATABASE_URL"),
    ({"MLFLOW_HTPASSWD": None}, "MLFLOW_HTPASSWD"),
    ({"MLFLOW_HTPASSWD": APR1}, "MLFLOW_HTPASSWD: line 1: an apr1"),
    ({"MLFLOW_HTPASSWD": f"{USERS}bob:{PASSWORD}\n"}, "MLFLOW_HTPASSWD: line 3: a plaintext"),
    ({"MLFLOW_HTPASSWD": f"{PASSWORD}\n"}, "MLFLOW_HTPASSWD: line 1: not a NAME:HASH"),
    ({"MLFLOW_HTPASSWD": USERS + USERS.splitlines()[0]}, "MLFLOW_HTPASSWD: line 3: user 'alice'"),
    ({"MLFLOW_ARTIFACTS_DESTINATION": None}, "MLFLOW_ARTIFACTS_DESTINATION"),
    ({"MLFLOW_ARTIFACTS_DESTINATION": "file:///tmp/artifacts"}, "MLFLOW_ARTIFACTS_DESTINATION"),
    ({"GOOGLE_APPLICATION_CREDENTIALS_JSON": "{not json" + PASSWORD}, "GOOGLE_APPLICATION"),
    ({"GOOGLE_APPLICATION_CREDENTIALS_JSON": "%%%" + PASSWORD}, "GOOGLE_APPLICATION"),
    ({"MLFLOW_HOSTS": "https://mlflow.example.com"}, "MLFLOW_HOSTS"),
    ({"MLFLOW_HOSTS": "mlflow.example.com,bad_host!"}, "MLFLOW_HOSTS"),
    ({"WEB_CONCURRENCY": "0"}, "WEB_CONCURRENCY"),
    ({"WEB_CONCURRENCY": "many"}, "WEB_CONCURRENCY"),
    ({"DATABASE_URL_FILE": "/dev/null"}, "both DATABASE_URL and DATABASE_URL_FILE"),
    ({"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE"}, "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
    ({"MLFLOW_DATA_DIR": "relative/dir"}, "MLFLOW_DATA_DIR"),
]


def _environment(change: dict[str, str | None]) -> dict[str, str]:
    environ = dict(GOOD)
    for name, value in change.items():
        if value is None:
            environ.pop(name)
        else:
            environ[name] = value
    return environ


@pytest.mark.parametrize(("change", "named"), BAD, ids=[n for _, n in BAD])
def test_bad_settings_are_one_line_exit_2_without_secrets(change, named, tmp_path: Path):
    """As the image runs it: `mlflow-platform web` (python -m configgen.container.platform)."""
    environ = _environment(change) | {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(REPO),
        "MLFLOW_PLATFORM_HOME": str(REPO / "stack" / "platform"),
    }
    done = subprocess.run([sys.executable, "-m", "configgen.container.platform", "web"],
                          env=environ, capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert len(output.splitlines()) == 1, output
    assert named in output, output
    assert "Traceback" not in output
    for secret in (PASSWORD, DB_PASSWORD, *USERS.split()):
        assert secret not in output, output


def test_at_least_twelve_kinds_of_bad_input():
    assert len({named.split(":")[0] for _, named in BAD}) >= 9
    assert len(BAD) >= 12


def test_an_unknown_command_is_refused():
    command = [sys.executable, "-m", "configgen.container.platform", "serve"]
    done = subprocess.run(command, env={"PYTHONPATH": str(REPO)}, capture_output=True, text=True)
    assert done.returncode == 2 and "usage: mlflow-platform" in done.stderr
