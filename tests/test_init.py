"""`configgen init`: generated service secrets, 0600, never overwritten, never printed."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

from configgen.servicesecrets import SECRETS
from tests.support import REPO, Configgen, run_configgen, snapshot


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_creates_secrets(configgen: Configgen, project: Path):
    done = configgen("init")
    assert done.returncode == 0, done.stderr
    folder = project / "secrets"
    assert mode(folder) == 0o700
    values = {}
    for secret in SECRETS:
        path = folder / secret.file
        assert mode(path) == 0o600
        values[secret.variable] = path.read_text().strip()
        assert len(values[secret.variable]) == secret.length
        assert values[secret.variable].isalnum()
        assert f"created secrets/{secret.file} ({secret.description}, generated)" in done.stdout
        assert values[secret.variable] not in done.stdout + done.stderr  # never shown
    assert len(set(values.values())) == len(values)

    assert sorted(p.name for p in project.iterdir()) == ["secrets", "stack"]  # nothing else
    assert "next: add the first user with `configgen htpasswd user add NAME`" in done.stdout


def test_second_run_changes_nothing_and_says_so(configgen: Configgen, project: Path):
    assert configgen("init").returncode == 0
    before = snapshot(project)
    again = configgen("init")
    assert again.returncode == 0
    assert again.stdout.startswith("nothing to do: every secret already exists")
    assert snapshot(project) == before


def test_two_projects_get_different_secrets(tmp_path_factory, configgen: Configgen, project):
    assert configgen("init").returncode == 0
    other = tmp_path_factory.mktemp("other")
    (other / "stack").mkdir()
    (other / "stack" / "stack.yaml").write_text("")
    assert run_configgen("init", cwd=other).returncode == 0
    for secret in SECRETS:
        mine = (project / "secrets" / secret.file).read_text()
        assert mine != (other / "secrets" / secret.file).read_text()


def test_existing_secrets_are_kept_and_modes_tightened(configgen: Configgen, project: Path):
    folder = project / "secrets"
    folder.mkdir(mode=0o755)  # too open: tightened
    (folder / "mysql_password").write_text("chosen-by-the-admin\n")
    (folder / "mysql_password").chmod(0o644)

    done = configgen("init")
    assert done.returncode == 0, done.stderr
    assert "tightened secrets/ from 0755 to 0700" in done.stdout
    assert "tightened secrets/mysql_password from 0644 to 0600" in done.stdout
    assert "created secrets/mysql_password" not in done.stdout
    assert "created secrets/mysql_root_password" in done.stdout
    assert (folder / "mysql_password").read_text() == "chosen-by-the-admin\n"


def test_values_from_the_environment(configgen: Configgen, project: Path, tmp_path_factory):
    given = tmp_path_factory.mktemp("given") / "root_pw"
    given.write_text("from-a-file\n")
    done = configgen("init", MYSQL_ROOT_PASSWORD_FILE=str(given), S3_ACCESS_KEY="MYACCESSKEY")
    assert done.returncode == 0, done.stderr
    folder = project / "secrets"
    assert (folder / "mysql_root_password").read_text() == "from-a-file\n"
    assert (folder / "s3_access_key").read_text() == "MYACCESSKEY\n"
    assert "(database root password, from $MYSQL_ROOT_PASSWORD)" in done.stdout
    assert "from-a-file" not in done.stdout


def test_generated_files_are_git_ignored():
    for path in (
        "secrets/mysql_password", "secrets/nginx/htpasswd", ".env", "dist/mlflow-eb.zip",
        "stack/mlflow/certs/proxy.crt", "data/mlflow.db",
    ):  # fmt: skip
        done = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO)
        assert done.returncode == 0, f"{path} is not git-ignored"
