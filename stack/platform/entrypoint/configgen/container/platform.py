"""PID 1 of the platform image (stack/platform/): nginx, the password verifier and MLflow in one
container, for platforms that give one container, a `$PORT` and a TLS-terminating router
(Heroku, AWS App Runner). Standard library only. docs/platform.md is the user's side.

    mlflow-platform web       the default command: serve until SIGTERM
    mlflow-platform release   migrate the database (Heroku's release phase), then exit

`web`, in the order a platform needs it: every setting is checked (one line and exit 2 for a
bad one); nginx binds `$PORT` at once and answers /health with 503 while MLflow is not up
(Heroku kills a web process that has not bound its port within 60 s); the schema is migrated
under the database lock (App Runner has no release phase); then MLflow starts. A crashed
child comes back with back-off (configgen/supervisor.py). SIGTERM stops everything and exits
0 well within the 30 s before the platform's SIGKILL.

Everything written goes under MLFLOW_DATA_DIR (default /tmp/mlflow): the root filesystem can
be read-only, and any UID works.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, MutableMapping
from importlib.util import find_spec
from pathlib import Path

from configgen.container import entrypoint, platform_env
from configgen.container.server import ALWAYS_OFF, uvicorn_command, uvicorn_environment
from configgen.errors import ConfiggenError, StackFailed, UsageError
from configgen.fileio import atomic_write, make_private_dirs
from configgen.supervisor import Service, Supervisor, reap_orphans

# What `configgen render` put in the image (configgen/targets/platform/): the nginx
# configuration with ${PORT} and ${MLFLOW_RUN_DIR} left to fill in, and settings.json.
HOME = Path(os.environ.get("MLFLOW_PLATFORM_HOME", "/opt/mlflow-platform"))
PLACEHOLDERS = ("PORT", "MLFLOW_RUN_DIR")
STOP_GRACE = 3.0  # per service, three of them: within 10 s in all
# Never handed to a child: each gets what it needs under another name, or nothing.
SECRET_INPUTS = (
    "DATABASE_URL", "MLFLOW_HTPASSWD", "GOOGLE_APPLICATION_CREDENTIALS_JSON",
    *platform_env.S3_SECRETS,
)  # fmt: skip

STARTED = time.monotonic()


def say(message: str) -> None:
    print(f"mlflow-platform: {message}", file=sys.stderr, flush=True)


def since_start() -> str:
    return f"{time.monotonic() - STARTED:.2f} s"


class _Stopped(Exception):
    pass


def _on_stop(signum: int, _frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise _Stopped(signal.Signals(signum).name)


def substitute(text: str, values: Mapping[str, str]) -> str:
    """nginxinc's envsubst, for our names only: nginx's own $variables stay as they are."""
    for name in PLACEHOLDERS:
        text = text.replace("${" + name + "}", values[name])
    return text


def child_environment(environ: Mapping[str, str], home: Path) -> dict[str, str]:
    """The environment every child starts from: the container's, without the secrets."""
    names = {*SECRET_INPUTS, *(f"{n}_FILE" for n in SECRET_INPUTS)}
    env = {k: v for k, v in environ.items() if k not in names}
    env["HOME"] = str(home)  # a random UID has no home of its own
    return env


def prepare(settings: platform_env.Settings, baked: dict) -> tuple[Path, Path]:
    """The run folder (made afresh: sockets of a previous run block nginx) with nginx's
    configuration and the users; returns it and nginx's folder."""
    data = settings.data_dir
    try:
        make_private_dirs(data)
        probe = data / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise UsageError(
            f"MLFLOW_DATA_DIR: cannot write to {data} ({err.strerror}); give a writable "
            "folder (e.g. under /tmp, or a tmpfs)"
        ) from None
    run = data / "run"
    shutil.rmtree(run, ignore_errors=True)
    conf = run / "nginx"
    make_private_dirs(conf)
    make_private_dirs(data / "home")
    values = {"PORT": str(settings.port), "MLFLOW_RUN_DIR": str(run)}
    for template in sorted((HOME / "nginx").glob("*.conf")):
        text = substitute(template.read_text(encoding="utf-8"), values)
        atomic_write(conf / template.name, text.encode(), 0o600)
    users = conf / baked["users_file"]
    make_private_dirs(users.parent)
    atomic_write(users, settings.htpasswd.encode(), 0o600)
    # Constant for the container's life: users change only with a new container.
    generation = f"generation {time.time_ns()};\n".encode()
    atomic_write(users.with_name(users.name + baked["generation_suffix"]), generation, 0o600)
    return run, conf


def mlflow_environment(settings: platform_env.Settings, baked: dict, run: Path,
                       base: dict[str, str]) -> dict[str, str]:  # fmt: skip
    hosts = [*baked["allowed_hosts"], *(p for n in settings.hosts for p in (n, f"{n}:*"))]
    origins = [*baked["cors_origins"],
               *(f"https://{n}{p}" for n in settings.hosts for p in ("", ":*"))]  # fmt: skip
    env = base | baked["switches"] | ALWAYS_OFF | settings.s3
    env |= uvicorn_environment(
        backend_uri=settings.database_url,
        artifacts_destination=settings.artifacts,
        boot_id=uuid.uuid4().hex,
        allowed_hosts=",".join(hosts),
        cors_origins=",".join(origins),
    )
    env["PYTHONUNBUFFERED"] = "1"
    # glibc gives each thread that allocates an arena of its own; MLflow's workers run Flask
    # in a thread pool. Two arenas keep each worker about 18 MB smaller (docs/platform.md).
    env.setdefault("MALLOC_ARENA_MAX", "2")
    if settings.gcs_credentials is not None:
        path = settings.data_dir / "home" / "gcs-credentials.json"
        atomic_write(path, settings.gcs_credentials.encode(), 0o600)
        env["GOOGLE_APPLICATION_CREDENTIALS"] = str(path)
    return env


class LogPipe:
    """One pipe for every child's output, copied to the container's own by PID 1. A process
    that is not root cannot open /dev/stdout (nginx's access log) when the platform's pipe
    belongs to root; it can open this one, which belongs to its own user."""

    def __init__(self) -> None:
        self.read, self.write = os.pipe()
        os.set_blocking(self.read, False)
        with contextlib.suppress(OSError):  # room for a burst while PID 1 is busy elsewhere
            fcntl.fcntl(self.write, fcntl.F_SETPIPE_SZ, 1 << 20)

    def forward(self, timeout: float) -> None:
        """Copy what the children wrote, waiting for it at most `timeout` seconds."""
        if select.select([self.read], [], [], timeout)[0]:
            with contextlib.suppress(BlockingIOError):
                while chunk := os.read(self.read, 1 << 16):
                    sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()


def nginx_argv(conf: Path, name: str) -> list[str]:
    return ["nginx", "-p", f"{conf}/", "-c", str(conf / name), "-e", "stderr",
            "-g", "daemon off;"]  # fmt: skip


def answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


def mlflow_ready(path: Path) -> bool:
    """MLflow's own /health, on its unix socket."""
    conn = http.client.HTTPConnection("localhost", timeout=2)
    try:
        conn.sock = socket.socket(socket.AF_UNIX)
        conn.sock.settimeout(2)
        conn.sock.connect(str(path))
        conn.request("GET", "/health")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def web(environ: MutableMapping[str, str]) -> int:
    settings = platform_env.read(environ, platform_env.container_memory())
    baked = json.loads((HOME / "settings.json").read_text(encoding="utf-8"))
    entrypoint.drop_privileges(environ)
    run, conf = prepare(settings, baked)
    base = child_environment(environ, settings.data_dir / "home")
    nginx_env = {"PATH": base.get("PATH", os.defpath), "HOME": base["HOME"]}
    socket_path = run / "mlflow.sock"
    logs = LogPipe()
    verifier = Service("auth verifier", nginx_argv(conf, baked["verifier_conf"]), None,
                       nginx_env, socket=run / "auth.sock", stop_signal=signal.SIGQUIT,
                       output=logs.write)
    nginx = Service("nginx", nginx_argv(conf, baked["main_conf"]), None, nginx_env,
                    stop_signal=signal.SIGQUIT, output=logs.write)  # fmt: skip
    supervisor = Supervisor([verifier, nginx], say)
    signal.signal(signal.SIGTERM, _on_stop)
    signal.signal(signal.SIGINT, _on_stop)
    try:
        supervisor.start_all()
        deadline = time.monotonic() + 10
        while not answers(settings.port):
            if supervisor.first_exited() or time.monotonic() > deadline:
                logs.forward(0.1)
                raise StackFailed(f"nginx did not start listening on port {settings.port}")
            time.sleep(0.02)
        say(f"nginx listens on port {settings.port} ({since_start()} after start); "
            "/health is 503 until MLflow is up")  # fmt: skip
        # In a process of its own: SQLAlchemy and the drivers stay out of PID 1's memory.
        migrated = subprocess.run([sys.executable, "-m", __spec__.name, "release"], check=False)
        if migrated.returncode != 0:
            raise StackFailed(f"the migration failed (exit code {migrated.returncode})")
        command = uvicorn_command(sys.executable, log_config(), socket=str(socket_path),
                                  workers=settings.workers)  # fmt: skip
        mlflow = Service("MLflow", command, None, mlflow_environment(settings, baked, run, base),
                         socket=socket_path, output=logs.write)
        supervisor.services.insert(0, mlflow)  # stopped last: nginx first stops taking requests
        mlflow.start()
        say(f"MLflow starting with {settings.workers} worker(s), artifacts in "
            f"{settings.artifacts.split('://')[0]}://, metadata at "
            f"{entrypoint.where(settings.database_url)}")  # fmt: skip
        ready = False
        while True:
            supervisor.restart_crashed()
            reap_orphans(lambda: {s.process.pid for s in supervisor.services if s.process})
            if not ready and mlflow_ready(socket_path):
                ready = True
                say(f"MLflow is ready ({since_start()} after start)")
            logs.forward(0.2)
    except _Stopped as stopped:
        say(f"{stopped}: stopping")
    finally:
        supervisor.stop_all(STOP_GRACE)
        logs.forward(0)
    say(f"stopped ({since_start()} after start)")
    return 0


def log_config() -> str:
    """MLflow's uvicorn log configuration, found without importing MLflow (200 MB)."""
    spec = find_spec("mlflow")
    if spec is None or spec.origin is None:
        raise UsageError("MLflow is not installed in this image's Python")
    return str(Path(spec.origin).parent / "server" / "uvicorn_log_config.yaml")


def release(environ: MutableMapping[str, str]) -> int:
    """Heroku's release phase: migrate before new web containers start. A database migrated
    by a newer image (a rollback) is logged, and the release goes on."""
    entrypoint.drop_privileges(environ)
    url = platform_env.database_url(environ)
    entrypoint.wait_for_database(url, 120)
    entrypoint.upgrade_schema(url, newer_ok=True)
    say(f"release done ({since_start()})")
    return 0


COMMANDS = {"web": web, "release": release}


def main(argv: list[str] | None = None, environ: MutableMapping[str, str] = os.environ) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in COMMANDS:
        say(f"usage: mlflow-platform {{{','.join(COMMANDS)}}} (got {' '.join(args)[:60]!r})")
        return UsageError.exit_code
    try:
        return COMMANDS[args[0]](environ)
    except _Stopped as stopped:
        say(f"{stopped}: stopped before serving")
        return 0
    except ConfiggenError as err:
        say(f"error: {err}")
        return err.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
