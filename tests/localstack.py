"""Start and stop real stacks with `configgen up --detach`, for the end-to-end tests."""

from __future__ import annotations

import base64
import http.client
import os
import re
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from configgen.targets.local.startup import free_port
from tests.support import REPO, clean_env, run_configgen

ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", REPO / "test-artifacts"))


@dataclass
class RunningStack:
    project: Path
    data: Path
    port: int
    user: str
    password: str
    env: dict[str, str]
    ca: Path | None = None  # with HTTPS: the certificate clients trust (self-signed)
    http_port: int | None = None  # with HTTPS: the plain-HTTP port (/health, redirects)

    @property
    def url(self) -> str:
        return f"{'https' if self.ca else 'http'}://127.0.0.1:{self.port}"

    def configgen(self, *args: str, stdin: str | None = None):
        return run_configgen(*args, cwd=self.project, stdin=stdin, env=self.env)

    def request(
        self,
        path: str,
        auth: tuple[str, str] | None = None,
        host: str | None = None,
        method: str = "GET",
    ) -> tuple[int, dict[str, str], bytes]:
        """One HTTP request through nginx; returns status, headers and body."""
        headers = {"Host": host or f"127.0.0.1:{self.port}"}
        if auth:
            token = base64.b64encode(":".join(auth).encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        if self.ca:
            context = ssl.create_default_context(cafile=str(self.ca))
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=30,
                                               context=context)  # fmt: skip
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, headers=headers)
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    @property
    def credentials(self) -> tuple[str, str]:
        return self.user, self.password

    def access_log(self) -> str | None:
        """nginx's access log so far."""
        return (self.data / "logs" / "nginx-access.log").read_text()


@contextmanager
def local_stack(project: Path, stack_yaml: str, **env: str) -> Iterator[RunningStack]:
    """A stack from `configgen up --detach` in `project`, stopped (and checked) afterwards."""
    (project / "stack").mkdir(exist_ok=True)
    (project / "stack" / "stack.yaml").write_text(stack_yaml)
    environment = clean_env(**env)
    port, http_port = free_port(), free_port()
    data = project / "data"
    done = run_configgen("up", "--detach", "--port", str(port), "--http-port", str(http_port),
                         cwd=project, env=environment)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    found = re.search(r"created the first user: (\S+), password: (\S+)", done.stdout)
    assert found, done.stdout
    certificate = re.search(r"export MLFLOW_TRACKING_SERVER_CERT_PATH=(\S+)", done.stdout)
    stack = RunningStack(project, data, port, found[1], found[2], environment,
                         Path(certificate[1]) if certificate else None,
                         http_port if certificate else None)  # fmt: skip
    try:
        yield stack
    finally:
        down = run_configgen("down", cwd=project, env=environment)
        assert down.returncode == 0, down.stderr
        assert "stopped the stack" in down.stdout


@contextmanager
def environ(**values: str | None) -> Iterator[None]:
    """Set (or, for None, remove) environment variables of this process for a while."""
    saved = {k: os.environ.get(k) for k in values}
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def mlflow_client_env(stack: RunningStack, user: str | None = None, password: str | None = None):
    """Point the MLflow client (in this process) at `stack` through the environment."""
    return environ(
        MLFLOW_TRACKING_URI=stack.url,
        MLFLOW_TRACKING_USERNAME=user or stack.user,
        MLFLOW_TRACKING_PASSWORD=password or stack.password,
        MLFLOW_TRACKING_SERVER_CERT_PATH=str(stack.ca) if stack.ca else None,
    )
