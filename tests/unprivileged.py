"""An ordinary user for the tests that run what users run without root: `configgen up`, the
compose quick start, the Elastic Beanstalk bundle. CI runs as root; this user is made for the
purpose, with ids no system account has, and may use the Docker engine (group docker)."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support import REPO, clean_env

NAME = "mlflow-tester"
UID, GID = 4242, 4343  # neither 1000 nor a system id: nothing may assume either


def ensure() -> pwd.struct_passwd:
    """The test user (made once per machine), in the docker group when there is one."""
    assert os.geteuid() == 0, "the suite runs as root (as CI does) to make its test user"
    try:
        grp.getgrgid(GID)
    except KeyError:
        subprocess.run(["groupadd", "--gid", str(GID), NAME], check=True)
    try:
        user = pwd.getpwnam(NAME)
    except KeyError:
        subprocess.run(["useradd", "--uid", str(UID), "--gid", str(GID), "--no-create-home",
                        "--shell", "/usr/sbin/nologin", NAME], check=True)  # fmt: skip
        user = pwd.getpwnam(NAME)
    try:
        docker = grp.getgrnam("docker")
    except KeyError:
        pass
    else:
        if NAME not in docker.gr_mem:
            subprocess.run(["usermod", "--append", "--groups", "docker", NAME], check=True)
    return user


def folder(prefix: str) -> Path:
    """A fresh folder the test user owns, where it can be reached (pytest's own are 0700)."""
    user = ensure()
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chown(path, user.pw_uid, user.pw_gid)
    return path


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def argv(*command: str) -> list[str]:
    """`command` as the test user, with its own groups (docker included) and nothing of root's."""
    return ["setpriv", f"--reuid={UID}", f"--regid={GID}", "--init-groups", "--", *command]


def run(*command: str, cwd: Path, stdin: str | None = None, timeout: float = 600,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Run `command` as the test user, with a user's environment (HOME its own, no root's)."""
    environment = clean_env(HOME=str(cwd), USER=NAME, LOGNAME=NAME) | (env or {})
    return subprocess.run(argv(*command), cwd=cwd, input=stdin, capture_output=True, text=True,
                          env=environment, timeout=timeout)  # fmt: skip


# pip's cache for the test user, kept between runs on one machine (CI starts without it).
PIP_CACHE = Path("/var/tmp/mlflow-tester-pip-cache")


def copy_source(target: Path) -> Path:
    """The repository's files (not its environment, secrets or caches) at `target`, where the
    test user can read them: a clone may be anywhere, a private temp folder included."""
    shutil.copytree(REPO, target, ignore=shutil.ignore_patterns(
        ".git", ".venv", "data", "secrets", "dist", "build", "*.egg-info", "test-artifacts",
        "__pycache__", ".ruff_cache", ".pytest_cache"))  # fmt: skip
    for path in (target, *target.rglob("*")):  # modes are copied too: a 0700 clone's among them
        os.chown(path, UID, GID, follow_symlinks=False)
    return target


def install(folder: Path) -> Path:
    """A virtual environment of the test user's in `folder`, with configgen installed from
    its wheel as the README says (`pip install '.[local]'`), from Debian's Python: the suite's
    own may live where other users cannot go (pyenv under /root). Returns its bin folder."""
    ensure()
    with tempfile.TemporaryDirectory() as tmp:
        build = copy_source(Path(tmp) / "source")
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w",
                        str(folder), str(build)], check=True, capture_output=True)  # fmt: skip
    (wheel,) = folder.glob("configgen-*.whl")
    PIP_CACHE.mkdir(exist_ok=True)
    os.chown(PIP_CACHE, UID, GID)
    venv = folder / "venv"
    for command in (
        ["/usr/bin/python3", "-m", "venv", str(venv)],
        [str(venv / "bin" / "pip"), "install", "--quiet", f"{wheel}[local]"],
    ):
        done = run(*command, cwd=folder, env={"PIP_CACHE_DIR": str(PIP_CACHE)}, timeout=1200)
        assert done.returncode == 0, done.stderr[-3000:]
    return venv / "bin"
