"""The rendered nginx configuration served by a real nginx, with a recording server where MLflow
would be: what reached "MLflow", with which method, path, headers and body.

The nginx is laid out as `configgen up` lays out its own (configgen/targets/local/run_folder.py):
run folder on tmpfs, users copied into it, the upstream on a unix socket, and, as root, workers
as www-data. The tests play the supervisor's part and copy the users after each change.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import shutil
import signal
import socketserver
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from configgen import stack
from configgen.targets.local import run_folder
from configgen.waiting import wait_until
from tests.localstack import free_port
from tests.servers import listening
from tests.support import children, run_configgen, wait_for_new


class Recorder(http.server.BaseHTTPRequestHandler):
    """Answers 200 to any method and remembers each request's method, raw path, headers and
    body size (in the server's `seen`)."""

    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        self.server.started.set()
        length = int(self.headers.get("Content-Length") or 0)
        received = 0
        while received < length:
            received += len(self.rfile.read(min(65536, length - received)))
        self.server.seen.append({"method": self.command, "path": self.path,
                                 "headers": dict(self.headers), "body": received})  # fmt: skip
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        if self.command != "HEAD":
            # nginx may have what it needs (for a HEAD from its client) and close.
            with contextlib.suppress(BrokenPipeError):
                self.wfile.write(b"ok")

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = _answer

    def log_message(self, *_: object) -> None:
        pass


class RecordingServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: Path) -> None:
        super().__init__(str(path), Recorder)
        path.chmod(0o666)  # as uvicorn makes MLflow's: the folder is the barrier
        self.seen: list[dict] = []
        self.started = threading.Event()  # set when a request's headers arrive, before its body


@dataclass
class RecordingProxy:
    port: int
    project: Path
    run: run_folder.RunFolder
    logs: Path
    upstream: RecordingServer
    server: subprocess.Popen
    verifier: subprocess.Popen

    @property
    def seen(self) -> list[dict]:
        return self.upstream.seen

    def sync(self) -> None:
        """What `configgen up`'s supervisor does every half second."""
        self.run.sync_users(self.project / "secrets" / "nginx" / "htpasswd")

    def configgen(self, *args: str, stdin: str | None = None):
        """`configgen ...` in the project (a users change), then the copy."""
        done = run_configgen(*args, cwd=self.project, stdin=stdin)
        self.sync()
        return done

    def reload(self) -> None:
        """SIGHUP, as `configgen ... --reload` sends; returns once the new workers answer."""
        old = children(self.server.pid)
        self.server.send_signal(signal.SIGHUP)
        wait_for_new(lambda: children(self.server.pid), old, "nginx")


def _wait(check, process: subprocess.Popen, what: str) -> None:
    def alive() -> None:
        assert process.poll() is None, process.stderr.read()

    wait_until(check, 10, f"{what} did not start", alive=alive)


@contextmanager
def recording_proxy(project: Path, logs: Path) -> Iterator[RecordingProxy]:
    """nginx with the rendered configuration of `project`'s stack file on a free port."""
    run = run_folder.RunFolder(Path(tempfile.mkdtemp(dir="/dev/shm")))
    logs.mkdir(exist_ok=True)
    upstream = RecordingServer(run.mlflow_socket)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    port = free_port()
    loaded = stack.read(project / "stack" / "stack.yaml")
    runtime = run_folder.configure(loaded, run, logs, f"127.0.0.1:{port}")
    commands = run_folder.argvs(run_folder.find_nginx(), run, Path("/dev/stderr"))
    verifier, server = (
        subprocess.Popen(argv, stderr=subprocess.PIPE, text=True) for argv in commands.values()
    )
    proxy = RecordingProxy(port, project, run, logs, upstream, server, verifier)
    try:
        _wait(lambda: listening(port), server, "nginx")
        _wait(lambda: os.path.exists(runtime.auth_socket), verifier, "the verifier")
        yield proxy
    finally:
        for process in (server, verifier):
            process.send_signal(signal.SIGQUIT)  # graceful: flushes the access log
            process.wait(timeout=10)
        upstream.shutdown()
        upstream.server_close()
        shutil.rmtree(run.root)
