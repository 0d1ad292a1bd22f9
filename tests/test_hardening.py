"""Hardening, each item proven: no version in answers, security headers that the UI lives with
(tests/test_e2e_local.py loads it in Chromium with them), deliberate limits, private secret
files, and no default or example password anywhere in the repository or a rendered project."""

from __future__ import annotations

import base64
import http.client
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.localstack import RunningStack, local_stack
from tests.support import PASSWORD, REPO, Configgen

SEARCH = "/api/2.0/mlflow/experiments/search?max_results=1"


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[RunningStack]:
    with local_stack(tmp_path_factory.mktemp("hardening"), "auth: {bcrypt_cost: 4}\n") as running:
        yield running


def raw(stack: RunningStack, path: str, headers: dict[str, str]) -> http.client.HTTPResponse:
    context = ssl.create_default_context(cafile=str(stack.ca))
    conn = http.client.HTTPSConnection("127.0.0.1", stack.port, context=context, timeout=30)
    conn.request("GET", path, headers={"Host": "localhost", **headers})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def header_values(response: http.client.HTTPResponse, name: str) -> list[str]:
    return [v for k, v in response.getheaders() if k.lower() == name.lower()]


def test_answers_name_no_version(stack: RunningStack):
    assert stack.ca is not None  # the default stack: HTTPS
    for path, auth in (("/health", None), (SEARCH, None), (SEARCH, stack.credentials)):
        headers = stack.request(path, auth)[1]
        assert headers["Server"] == "nginx", headers


@pytest.mark.parametrize(
    ("path", "authenticated", "status"),
    [("/health", False, 200), (SEARCH, False, 401), (SEARCH, True, 200), ("/", True, 200),
     ("/api/3.0/mlflow/server-info", True, 404)],
)  # fmt: skip
def test_security_headers_once_on_every_answer(stack: RunningStack, path, authenticated, status):
    token = base64.b64encode(f"{stack.user}:{stack.password}".encode()).decode()
    response = raw(stack, path, {"Authorization": f"Basic {token}"} if authenticated else {})
    assert response.status == status
    assert header_values(response, "X-Content-Type-Options") == ["nosniff"]
    assert header_values(response, "X-Frame-Options") == ["SAMEORIGIN"]
    assert header_values(response, "Referrer-Policy") == ["same-origin"]
    assert header_values(response, "Strict-Transport-Security") == ["max-age=31536000"]


def test_header_size_is_limited(stack: RunningStack):
    assert raw(stack, SEARCH, {"X-Padding": "a" * 15_000}).status == 401  # under 16k: read
    assert raw(stack, SEARCH, {"X-Padding": "a" * 17_000}).status == 400  # over: refused


def test_body_size_limit_is_the_stack_files(tmp_path: Path):
    from configgen import render, stack, targets

    for text, expected in (("", "client_max_body_size 16g;"),
                           ("proxy: {max_body_size: 2g}", "client_max_body_size 2g;")):  # fmt: skip
        project = stack.Project(Path("stack/stack.yaml"), tmp_path, stack.parse(text, "x"))
        files = {k: v.data for k, v in render.render(project, targets.outputs(project)).items()}
        assert expected in files["nginx/mlflow-proxy.conf"].decode()
        http_conf = files["nginx/mlflow-http.conf"].decode()
        assert "large_client_header_buffers 4 16k;" in http_conf
        assert "client_header_timeout 30s;" in http_conf
        assert "limit_conn mlflow_connections 128;" in files["nginx/mlflow-server.conf"].decode()


def test_secret_files_are_private(configgen: Configgen, project: Path):
    (project / "stack" / "stack.yaml").write_text("auth: {bcrypt_cost: 4}\n")
    assert configgen("init").returncode == 0
    add = configgen("htpasswd", "user", "add", "alice", "--password-stdin", stdin=PASSWORD)
    assert add.returncode == 0
    modes = {
        p.relative_to(project).as_posix(): p.stat().st_mode & 0o777
        for p in (project / "secrets").rglob("*")
    }
    assert modes == {
        "secrets/mysql_root_password": 0o600,
        "secrets/mysql_password": 0o600,
        "secrets/s3_access_key": 0o600,
        "secrets/s3_secret_key": 0o600,
        "secrets/tls": 0o700,
        "secrets/tls/key.pem": 0o600,
        "secrets/tls/certificate.pem": 0o644,  # public by nature
        "secrets/nginx": 0o750,
        "secrets/nginx/htpasswd": 0o640,  # nginx's workers read it through the group
        "secrets/nginx/htpasswd.generation": 0o640,
    }, modes


# Assembled here so that this file does not itself hold what it looks for.
WELL_KNOWN = ["password" + "1234", "minio" + "admin", "mlflow:" + "mlflow", "admin:" + "password"]


def test_no_default_or_example_password_in_the_repository():
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                             check=True).stdout.decode().split("\0")  # fmt: skip
    assert len(tracked) > 50
    found = []
    for name in filter(None, tracked):
        path = REPO / name
        if path.is_file():
            text = path.read_bytes().decode("utf-8", "replace").lower()
            found += [f"{name}: {word}" for word in WELL_KNOWN if word in text]
    assert found == []


def secret_values(folder: Path) -> tuple[list[Path], list[str]]:
    """The secret files under a secrets folder and what in them must never be published: each
    service secret, each line of the TLS key, each user's hash (the certificate is public,
    the generation a counter)."""
    files, values = [], []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.name in ("certificate.pem", "htpasswd.generation"):
            continue
        lines = path.read_text().splitlines()
        if path.suffix == ".pem":
            lines = [line for line in lines if not line.startswith("-----")]
        elif path.name == "htpasswd":
            lines = [line.split(":", 1)[1] for line in lines]
        files.append(path)
        values += [line.strip() for line in lines if len(line.strip()) >= 16]
    return files, values


def test_no_generated_secret_in_committed_or_rendered_files(configgen: Configgen, project: Path):
    (project / "stack" / "stack.yaml").write_text("auth: {bcrypt_cost: 4}\n")
    assert configgen("init").returncode == 0
    add = configgen("htpasswd", "user", "add", "alice", "--password-stdin", stdin=PASSWORD)
    assert add.returncode == 0
    assert configgen("render").returncode == 0
    secrets = [p.read_text().strip() for p in (project / "secrets").glob("*") if p.is_file()]
    key = (project / "secrets" / "tls" / "key.pem").read_text().splitlines()[1]
    assert len(secrets) == 4 and all(len(s) >= 20 for s in secrets)
    rendered = [p for p in project.rglob("*") if p.is_file() and "secrets" not in p.parts]
    assert len(rendered) > 15
    for path in rendered:
        text = path.read_text()
        for secret in [*secrets, key]:
            assert secret not in text, path
    # Nor in the repository: what `configgen init` and `user add` just made (a generator that
    # fell back on a fixed value would show here), and the repository's own secrets when an
    # earlier run here made some (never committed).
    files, values = secret_values(project / "secrets")
    assert len(files) == 6, files  # four service secrets, the TLS key, the users
    if (REPO / "secrets").is_dir():
        more_files, more_values = secret_values(REPO / "secrets")
        files, values = files + more_files, values + more_values
    assert len(values) > len(files), values  # the key has many lines
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout.split("\0")  # fmt: skip
    checked = 0
    for name in filter(None, tracked):
        if (REPO / name).is_file():
            data = (REPO / name).read_bytes().decode("utf-8", "replace")
            assert not [v for v in values if v in data], name
            checked += 1
    assert checked > 50, checked
