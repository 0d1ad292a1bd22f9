"""configgen as a user installs it: its wheel, non-editable, in a virtual environment of an
ordinary user (tests/unprivileged.py), used in an empty folder that is not this repository.
Everything it renders, bundles and runs must come from the installed package."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from configgen import mlflow_image, stack, targets
from tests import unprivileged
from tests.localstack import free_port
from tests.support import PASSWORD, REPO

pytestmark = pytest.mark.slow

# A stack Elastic Beanstalk may run on several instances (RDS, S3, secrets by ARN, HTTPS).
ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret"
EB_STACK = f"""\
hosts: [mlflow.example.com]
mlflow:
  backend_store: mysql+pymysql://mlflow@db.example.internal:3306/mlflow
  artifact_destination: s3://acme-mlflow/artifacts
elastic_beanstalk:
  max_instances: 4
  https_certificate: arn:aws:acm:eu-west-1:123456789012:certificate/abc
  secrets: {{htpasswd: "{ARN}:users", database_password: "{ARN}:db"}}
"""


@pytest.fixture(scope="module")
def home(user_bin: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    folder = unprivileged.folder("regular-install-")
    env = {"PATH": f"{user_bin}:/usr/bin:/bin"}
    try:
        yield folder, env
    finally:
        unprivileged.remove(folder)


def configgen(home: tuple[Path, dict[str, str]], *args: str, cwd: str = "proj",
              stdin: str | None = None):  # fmt: skip
    folder, env = home
    return unprivileged.run("configgen", *args, cwd=folder / cwd, stdin=stdin, env=env)


@pytest.fixture(scope="module")
def project(home: tuple[Path, dict[str, str]]) -> Path:
    done = configgen(home, "new", "proj", cwd=".")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("made a stack project in proj (")
    return home[0] / "proj"


def test_new_makes_what_the_repository_ships(project: Path):
    shipped = stack.read(REPO / "stack" / "stack.yaml")
    paths = [out.path for out in targets.outputs(shipped)]
    assert len(paths) > 30 and "stack/mlflow/Dockerfile" in paths
    for path in [*paths, "stack/stack.yaml"]:
        assert (project / path).read_bytes() == (REPO / path).read_bytes(), path
    ignored = (project / ".gitignore").read_text().splitlines()
    assert {"/secrets/", "/data/"} <= set(ignored)
    readme = (project / "README.md").read_text()
    for command in ("configgen init", "configgen htpasswd user add",
                    "docker compose -f compose/production.yml up -d --build"):  # fmt: skip
        assert command in readme, command


def test_new_refuses_a_folder_that_is_not_empty(home, project: Path):
    before = sorted(p.relative_to(project) for p in project.rglob("*"))
    done = configgen(home, "new", "proj", cwd=".")
    assert done.returncode == 2
    assert done.stderr == (
        "configgen: proj: not empty; `configgen new` makes a project in a new or empty "
        "folder (nothing was written)\n"
    )
    assert sorted(p.relative_to(project) for p in project.rglob("*")) == before


def test_init_users_render_bundle_check(home, project: Path):
    for args, stdin in (
        (["init"], None),
        (["htpasswd", "user", "add", "alice", "--password-stdin"], PASSWORD),
        (["render"], None),
        (["render", "--check"], None),
    ):
        done = configgen(home, *args, stdin=stdin)
        assert done.returncode == 0, (args, done.stderr)
    assert done.stdout.startswith("all 63 rendered files in . match")
    (project / "stack" / "eb.yaml").write_text(EB_STACK)
    bundled = configgen(home, "--stack", "stack/eb.yaml", "eb", "bundle", "--out", "eb.zip")
    assert bundled.returncode == 0, bundled.stderr
    checked = configgen(home, "eb", "check", "eb.zip")
    assert checked.returncode == 0, checked.stdout
    with zipfile.ZipFile(project / "eb.zip") as archive:
        names = set(archive.namelist())
        dockerfile = archive.read("Dockerfile").decode()
    code = {f"{mlflow_image.CODE}/configgen/{name}" for name in mlflow_image.CODE_FILES}
    assert code <= names  # the container code, from the installed package
    assert "COPY entrypoint/ /opt/mlflow-entrypoint/" in dockerfile


def test_up_logs_a_metric_and_down_stops_it(home, project: Path):
    port, http_port = free_port(), free_port()
    up = configgen(home, "up", "--detach", "--port", str(port), "--http-port", str(http_port))
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        assert "created the first user" not in up.stdout  # alice is there
        url = re.search(r"MLFLOW_TRACKING_URI=(\S+)", up.stdout)[1]
        client = (
            "import mlflow\n"
            "with mlflow.start_run() as run:\n"
            "    mlflow.log_metric('loss', 0.1)\n"
            "print(mlflow.MlflowClient().get_run(run.info.run_id).data.metrics['loss'])\n"
        )
        env = home[1] | {
            "MLFLOW_TRACKING_URI": url,
            "MLFLOW_TRACKING_USERNAME": "alice",
            "MLFLOW_TRACKING_PASSWORD": PASSWORD,
            "MLFLOW_TRACKING_SERVER_CERT_PATH": str(project / "secrets/tls/certificate.pem"),
        }
        logged = unprivileged.run("python", "-c", client, cwd=project, env=env)
        assert logged.returncode == 0, logged.stderr[-2000:]
        assert logged.stdout.strip().splitlines()[-1] == "0.1"
    finally:
        down = configgen(home, "down")
    assert down.returncode == 0 and down.stdout.startswith("stopped the stack"), down.stderr
