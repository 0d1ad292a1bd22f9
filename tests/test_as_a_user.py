"""`configgen up` as an ordinary user (made for the purpose: tests/unprivileged.py), and who
nginx's workers are: the user's own identity then, www-data when root starts the stack, never
root nor group root. MLflow listens on a unix socket no other user of the machine can reach."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from configgen import procfs
from configgen.targets.local.data import DataDir
from tests import crafted, mlflow_flow, unprivileged
from tests.localstack import RunningStack, free_port, local_stack
from tests.support import PASSWORD

pytestmark = pytest.mark.slow

PYTHON = "/usr/bin/python3"  # one every user may run
STACK = "auth: {bcrypt_cost: 4}\n"


def identity(pid: int) -> tuple[int, int, set[int], str]:
    """(uid, gid, supplementary groups, name) of a process, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    uid = int(re.search(r"^Uid:\s+(\d+)", status, re.M)[1])
    gid = int(re.search(r"^Gid:\s+(\d+)", status, re.M)[1])
    groups = {int(g) for g in re.search(r"^Groups:(.*)$", status, re.M)[1].split()}
    title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return uid, gid, groups, title


def stack_processes(data: Path) -> dict[int, tuple[int, int, set[int], str]]:
    supervisor = int((data / "up.pid").read_text())
    return {pid: identity(pid) for pid in {supervisor, *procfs.descendants(supervisor)}
            if Path(f"/proc/{pid}").exists()}  # fmt: skip


@pytest.fixture(scope="module")
def user_stack(user_bin: Path) -> Iterator[RunningStack]:
    """The README's first quick start, `configgen up`, run by the test user in its folder with
    its own installation of configgen."""
    project = unprivileged.folder("as-a-user-")
    (project / "stack").mkdir()
    (project / "stack" / "stack.yaml").write_text(STACK)
    os.chown(project / "stack", unprivileged.UID, unprivileged.GID)
    port, http_port = free_port(), free_port()
    env = {"PATH": f"{user_bin}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"}
    done = unprivileged.run("configgen", "up", "--detach", "--port", str(port),
                            "--http-port", str(http_port), cwd=project, env=env)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    password = re.search(r"created the first user: admin, password: (\S+)", done.stdout)[1]
    certificate = project / "secrets" / "tls" / "certificate.pem"
    stack = RunningStack(project, project / "data", port, "admin", password, env, certificate,
                         http_port)  # fmt: skip
    try:
        yield stack
    finally:
        down = unprivileged.run("configgen", "down", cwd=project, env=env)
        assert down.returncode == 0, down.stderr
        unprivileged.remove(project)


def test_everything_runs_as_the_user(user_stack: RunningStack):
    processes = stack_processes(user_stack.data)
    titles = " ".join(title for *_, title in processes.values())
    assert "worker process" in titles and "uvicorn" in titles, titles
    for pid, (uid, gid, groups, title) in processes.items():
        assert (uid, gid) == (unprivileged.UID, unprivileged.GID), (pid, title)
        assert 0 not in groups, (pid, title, groups)
    # Its files are its own: the users file in its group, the run folder private.
    users = user_stack.project / "secrets" / "nginx" / "htpasswd"
    assert (users.stat().st_uid, users.stat().st_gid) == (unprivileged.UID, unprivileged.GID)
    run = DataDir(user_stack.data).run_dir
    assert run.stat().st_uid == unprivileged.UID and run.stat().st_mode & 0o777 == 0o700


def test_mlflow_listens_on_a_socket_no_other_user_reaches(user_stack: RunningStack):
    processes = stack_processes(user_stack.data)
    mlflow = {pid for pid, (*_, title) in processes.items() if "nginx" not in title}
    listening = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
    assert not [line for line in listening.splitlines()
                if any(f"pid={pid}," in line for pid in mlflow)], listening  # fmt: skip
    mlflow_socket = DataDir(user_stack.data).run_dir / "mlflow.sock"
    probe = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "try:\n    s.connect(sys.argv[1])\nexcept PermissionError:\n    sys.exit(13)\n"
    )
    nobody = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                             PYTHON, "-c", probe, str(mlflow_socket)])  # fmt: skip
    assert nobody.returncode == 13, "another user reached MLflow's socket"
    # The owner itself does (the socket works).
    owner = subprocess.run(unprivileged.argv(PYTHON, "-c", probe, str(mlflow_socket)))
    assert owner.returncode == 0


def test_the_client_and_a_new_user_work(user_stack: RunningStack, tmp_path: Path):
    mlflow_flow.exercise(user_stack, tmp_path, "as-a-user")
    add = unprivileged.run("configgen", "htpasswd", "user", "add", "bob",
                           "--password-stdin", "--reload", cwd=user_stack.project,
                           stdin=PASSWORD, env=user_stack.env)  # fmt: skip
    assert add.returncode == 0, add.stderr
    assert "reloaded the nginx of the stack" in add.stdout
    assert user_stack.request(crafted.SEARCH + "?max_results=1", ("bob", PASSWORD))[0] == 200


def test_crafted_requests_never_reach_mlflow(user_stack: RunningStack):
    crafted.assert_only_health_reached_mlflow(
        (user_stack.data / "logs" / "mlflow.log").read_text,
        lambda: crafted.send_to_stack(user_stack),
        lambda path: user_stack.request(path, user_stack.credentials)[0],
    )


@pytest.fixture(scope="module")
def root_stack(tmp_path_factory) -> Iterator[RunningStack]:
    with local_stack(tmp_path_factory.mktemp("as-root"), STACK) as running:
        yield running


def test_started_by_root_the_workers_are_www_data(root_stack: RunningStack):
    assert os.geteuid() == 0
    workers = {pid: ids for pid, ids in stack_processes(root_stack.data).items()
               if "worker process" in ids[3]}  # fmt: skip
    assert len(workers) >= 2  # the serving nginx's and the verifier's
    for pid, (uid, gid, groups, title) in workers.items():
        assert (uid, gid) == (33, 33), (pid, title)
        assert 0 not in groups, (pid, title, groups)
    # They reach what they need, through the group only.
    run = DataDir(root_stack.data).run_dir
    assert (run.stat().st_gid, run.stat().st_mode & 0o777) == (33, 0o710)
    search = root_stack.request(crafted.SEARCH + "?max_results=1", root_stack.credentials)
    assert search[0] == 200
