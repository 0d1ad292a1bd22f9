"""The rendered nginx configuration, served by a real nginx with users made by `configgen`.

Behind it is a small recording HTTP server instead of MLflow, because these tests check what
nginx itself must do: who gets in, which headers reach the upstream (never the password), that
large bodies stream through, and what the access log holds. The same fragments run in front of
a real MLflow in the `configgen up` tests.
"""

from __future__ import annotations

import base64
import http.client
import http.server
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from configgen import nginx, render, stack
from tests.support import PASSWORD, run_configgen

BODY_BYTES = 5 * 1024 * 1024  # well over nginx's default 1 MB limit


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Recorder(http.server.BaseHTTPRequestHandler):
    """Answers 200 and remembers each request's path, headers and body size."""

    seen: ClassVar[list[dict]] = []
    started = threading.Event()  # set when a request's headers arrive, before its body

    def _answer(self) -> None:
        self.started.set()
        length = int(self.headers.get("Content-Length") or 0)
        received = 0
        while received < length:
            received += len(self.rfile.read(min(65536, length - received)))
        self.seen.append({"path": self.path, "headers": dict(self.headers), "body": received})
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def proxy(project: Path, tmp_path_factory) -> Iterator[dict]:
    """nginx with the rendered config on a free port, one user, the Recorder behind it."""
    stack_file = project / "stack" / "stack.yaml"
    stack_file.write_text("hosts: [mlflow.example.com]\nauth: {bcrypt_cost: 4}\n")
    done = run_configgen(
        "htpasswd", "user", "add", "alice", "--password-stdin", cwd=project, stdin=PASSWORD
    )
    assert done.returncode == 0, done.stderr

    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    Recorder.seen = []
    Recorder.started.clear()
    threading.Thread(target=upstream.serve_forever, daemon=True).start()

    conf = tmp_path_factory.mktemp("nginx")
    (conf / "logs").mkdir()
    (conf / "tmp").mkdir()
    (conf / "secrets").symlink_to(project / "secrets" / "nginx")
    port = free_port()
    loaded = stack.read(stack_file)
    runtime = nginx.local_runtime(
        conf, conf / "logs", f"127.0.0.1:{port}", f"127.0.0.1:{upstream.server_port}"
    )
    files = render.nginx_outputs(loaded, runtime, ".")
    render.write(render.render(loaded, files), conf)

    assert shutil.which("nginx"), "nginx is installed by tests/run.sh"
    server = subprocess.Popen(
        [
            "nginx",
            "-p",
            f"{conf}/",
            "-c",
            f"{conf}/nginx.conf",
            "-e",
            "stderr",
            "-g",
            "daemon off;",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert server.poll() is None, server.stderr.read()
            assert time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.05)
    yield {"port": port, "seen": Recorder.seen, "logs": conf / "logs"}
    server.send_signal(signal.SIGQUIT)  # graceful: flushes the access log
    server.wait(timeout=10)
    upstream.shutdown()


def request(
    port: int,
    path: str,
    auth: tuple[str, str] | None = None,
    method: str = "GET",
    body: bytes | None = None,
    host: str = "mlflow.example.com",
) -> http.client.HTTPResponse:
    headers = {"Host": host}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def test_without_credentials_401_with_a_basic_challenge(proxy: dict):
    response = request(proxy["port"], "/api/2.0/mlflow/experiments/search")
    assert response.status == 401
    assert response.getheader("WWW-Authenticate") == 'Basic realm="MLflow"'
    assert proxy["seen"] == []


@pytest.mark.parametrize(
    "auth", [("alice", "not the password"), ("mallory", PASSWORD), ("alice", "")]
)
def test_wrong_credentials_401(proxy: dict, auth: tuple[str, str]):
    assert request(proxy["port"], "/", auth).status == 401
    assert proxy["seen"] == []


def test_valid_user_reaches_mlflow_without_the_password(proxy: dict):
    response = request(
        proxy["port"], "/api/2.0/mlflow/experiments/search?max_results=5", ("alice", PASSWORD)
    )
    assert response.status == 200
    assert response.getheader("Server") == "nginx"  # no version: server_tokens off
    (seen,) = proxy["seen"]
    assert seen["path"] == "/api/2.0/mlflow/experiments/search?max_results=5"
    headers = {k.lower(): v for k, v in seen["headers"].items()}
    assert "authorization" not in headers
    assert headers["host"] == "mlflow.example.com"
    assert headers["x-forwarded-host"] == "mlflow.example.com"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-real-ip"] == "127.0.0.1"


def test_health_needs_no_credentials(proxy: dict):
    response = request(proxy["port"], "/health")
    assert response.status == 200
    assert [s["path"] for s in proxy["seen"]] == ["/health"]
    # Only the exact path is open.
    assert request(proxy["port"], "/health/../api/2.0/mlflow/experiments/search").status == 401
    assert request(proxy["port"], "/healthz").status == 401


ARTIFACT = "/api/2.0/mlflow-artifacts/artifacts/1/run/artifacts/model.bin"


def test_large_upload_passes_and_unauthenticated_upload_is_refused(proxy: dict):
    body = os.urandom(BODY_BYTES)
    response = request(proxy["port"], ARTIFACT, ("alice", PASSWORD), "PUT", body)
    assert response.status == 200
    assert proxy["seen"][-1]["body"] == BODY_BYTES
    assert request(proxy["port"], ARTIFACT, None, "PUT", body).status == 401


def test_uploads_stream_through_instead_of_being_spooled(proxy: dict):
    """MLflow sees an upload begin while the client is still sending it."""
    conn = http.client.HTTPConnection("127.0.0.1", proxy["port"], timeout=30)
    conn.putrequest("PUT", ARTIFACT)
    conn.putheader(
        "Authorization", "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    )
    conn.putheader("Content-Length", str(BODY_BYTES))
    conn.endheaders()
    conn.send(b"x" * (BODY_BYTES // 5))
    assert Recorder.started.wait(timeout=5), "nginx held the upload back until it was complete"
    assert proxy["seen"] == []  # and it is indeed not complete yet
    conn.send(b"x" * (BODY_BYTES - BODY_BYTES // 5))
    assert conn.getresponse().status == 200
    conn.close()
    assert proxy["seen"][-1]["body"] == BODY_BYTES


def test_access_log_names_the_user_but_never_the_credentials(proxy: dict):
    request(proxy["port"], "/", ("alice", PASSWORD))
    request(proxy["port"], "/", ("alice", "a wrong guess"))
    request(proxy["port"], "/health")
    time.sleep(0.2)
    log = (proxy["logs"] / "nginx-access.log").read_text()
    assert '"GET / HTTP/1.1" 200' in log
    assert "alice" in log
    for secret in (PASSWORD, "a wrong guess"):
        assert secret not in log
        assert base64.b64encode(f"alice:{secret}".encode()).decode() not in log
    assert "/health" not in log  # probes are not logged


def test_python_clients_are_kept_to_proxied_artifact_transfers(proxy: dict):
    """No multipart/presigned advertisement reaches the Python client; the UI's copy does."""
    assert request(proxy["port"], "/api/3.0/mlflow/server-info", ("alice", PASSWORD)).status == 404
    assert proxy["seen"] == []
    ui = request(proxy["port"], "/ajax-api/3.0/mlflow/server-info", ("alice", PASSWORD))
    assert ui.status == 200
    assert proxy["seen"][-1]["path"] == "/ajax-api/3.0/mlflow/server-info"
