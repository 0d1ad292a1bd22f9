"""`configgen up`: the whole stack on this machine, without Docker, in the foreground.

nginx (configgen/targets/local/run_folder.py) in front of `mlflow server` from the current
Python environment, both children of a supervisor: the `configgen up` process itself, or its
detached copy (configgen/targets/local/detached.py, which starts this module). What lasts lives
in the data folder (data.py); what nginx's workers touch (configuration, sockets, the auth
cache) in a private run folder on tmpfs, removed when the stack stops (run_folder.py).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from configgen import command, mlflow_server, nginx
from configgen.container import bucket
from configgen.container.server import BACKEND_STORE_VARIABLE
from configgen.errors import ConfiggenError, StackFailed
from configgen.stack import Project, read
from configgen.supervisor import Service, Supervisor
from configgen.targets.local import run_folder, startup, stores
from configgen.targets.local.data import DataDir

DEFAULT_TIMEOUT = 120.0


@dataclass(frozen=True)
class Options:
    """Where and how long: what `configgen up` was asked for, and its detached copy gets."""

    host: str
    ports: tuple[int, int | None]  # see startup.ports()
    timeout: float = DEFAULT_TIMEOUT


class _Stopped(Exception):
    """SIGINT or SIGTERM arrived."""


def _on_stop_signal(signum: int, _frame: object) -> None:
    # Ignore further signals while stopping, so the clean-up itself is not interrupted.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise _Stopped(signal.Signals(signum).name)


def _mlflow(project: Project, data: DataDir, run: run_folder.RunFolder,
            environ: Mapping[str, str], say: Callable[[str], None]) -> Service:  # fmt: skip
    destination = stores.artifact_destination(project, data.root)
    env = dict(environ) | mlflow_server.server_environment(project.stack)
    env[BACKEND_STORE_VARIABLE] = stores.backend_uri(project, data.root, environ)
    env["PYTHONUNBUFFERED"] = "1"  # MLflow's lines (its access log too) reach mlflow.log at once
    s3 = stores.self_hosted_s3(project, destination, environ)
    if s3 is not None:
        if bucket.ensure_bucket(s3):
            say(f"created bucket {s3.bucket} on {s3.endpoint}")
        env |= s3.environment()
    args = mlflow_server.server_args(
        project.stack,
        host="127.0.0.1",
        port=project.stack.mlflow.port,  # unused: MLflow listens on the socket only
        artifacts_destination=destination,
        socket=str(run.mlflow_socket),
    )
    return Service("MLflow", [sys.executable, "-m", "mlflow", *args], data.logs / "mlflow.log",
                   env, socket=run.mlflow_socket)  # fmt: skip


def _services(project: Project, data: DataDir, nginx_bin: str, options: Options,
              environ: Mapping[str, str], say: Callable[[str], None]) -> list[Service]:  # fmt: skip
    """Render nginx's configuration and describe the services: MLflow, the password verifier
    (an nginx of its own, see configgen/nginx.py) and nginx."""
    run = run_folder.RunFolder(data.run_dir)
    logs = data.logs.resolve()
    port, http_port = options.ports
    https = None
    if http_port is not None:
        https = nginx.Https(startup.listen_address(options.host, port),
                            str(project.tls_certificate.resolve()),
                            str(project.tls_key.resolve()), port)  # fmt: skip
    listen = startup.listen_address(options.host, http_port or port)
    runtime = run_folder.configure(project, run, logs, listen, https)
    commands = run_folder.argvs(nginx_bin, run, logs / "nginx-error.log")
    return [
        _mlflow(project, data, run, environ, say),
        Service("auth verifier", commands["auth verifier"], data.logs / "nginx-verifier.log",
                socket=Path(runtime.auth_socket)),
        Service("nginx", commands["nginx"], data.logs / "nginx.log"),
    ]  # fmt: skip


def _wait_healthy(
    supervisor: Supervisor, base_url: str, timeout: float, say: Callable[[str], None]
) -> None:
    started = time.monotonic()
    next_note = started + 5
    while not startup.healthy(base_url):
        crashed = supervisor.first_exited()
        if crashed is not None:
            raise StackFailed(
                f"{crashed.name} exited with code {crashed.exit_code} while starting "
                f"(log: {crashed.log})",
                [f"last lines of {crashed.log}:", *crashed.last_lines()],
            )
        now = time.monotonic()
        if now - started > timeout:
            mlflow = supervisor.services[0]
            raise StackFailed(
                f"no answer from {base_url}/health after {timeout:.0f} s (log: {mlflow.log})",
                [f"last lines of {mlflow.log}:", *mlflow.last_lines()],
            )
        if now >= next_note:
            say(f"waiting for MLflow to answer {base_url}/health ({now - started:.0f} s)")
            next_note = now + 5
        time.sleep(0.25)


def run(
    project: Project,
    data: DataDir,
    options: Options,
    *,
    nginx_bin: str,
    environ: Mapping[str, str],
    say: Callable[[str], None],
    on_ready: Callable[[str], None],
) -> None:
    """Start the stack and keep it running until SIGINT or SIGTERM."""
    signal.signal(signal.SIGINT, _on_stop_signal)
    signal.signal(signal.SIGTERM, _on_stop_signal)
    base_url = startup.url(options.host, options.ports[0], https=options.ports[1] is not None)
    try:
        with data.lock():
            data.prepare_run_dir()  # before the try: its clean-up must not remove a stranger's
            supervisor = Supervisor([], say)
            try:
                startup.check_ports_free(options.host, options.ports)
                supervisor.services = _services(project, data, nginx_bin, options, environ, say)
                say(f"starting MLflow and {nginx_bin} (logs in {data.logs})")
                supervisor.start_all()
                _wait_healthy(supervisor, base_url, options.timeout, say)
                on_ready(base_url)
                while True:
                    supervisor.restart_crashed()
                    run_folder.RunFolder(data.run_dir).sync_users(project.htpasswd)
                    time.sleep(0.5)
            finally:
                # Inside the lock: `configgen down` returns only once the children are gone.
                supervisor.stop_all()
                shutil.rmtree(data.run_dir, ignore_errors=True)  # cached credentials
    except _Stopped as stopped:
        say(f"stopped ({stopped})")


def background_main() -> int:
    """The detached supervisor (detached.py starts it, its output going to up.log): the same
    run, its options read as JSON from standard input."""
    given = json.loads(sys.stdin.read())
    sys.stdin.close()
    options = Options(given["host"], tuple(given["ports"]), given["timeout"])
    data = DataDir(Path(given["data"]))
    try:
        project = read(Path(given["stack_file"]))
        def ready(url: str) -> None:
            command.say(f"ready at {url}; stop with `configgen down --data {data.root}`")

        run(project, data, options, nginx_bin=run_folder.find_nginx(), environ=os.environ,
            say=command.say, on_ready=ready)
    except ConfiggenError as err:
        return command.show_error(err)
    return 0


if __name__ == "__main__":
    raise SystemExit(background_main())
