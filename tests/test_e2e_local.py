"""The local stack end to end: `configgen up` (SQLite, artifacts folder, HTTPS with its
self-signed certificate), the real MLflow client through nginx, and the UI in a real
Chromium."""

from __future__ import annotations

import base64
import hashlib
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from configgen.targets.local.data import DataDir
from tests import mlflow_flow
from tests.localstack import ARTIFACTS, RunningStack, local_stack
from tests.support import PASSWORD, fresh_until, verifier_checks

STACK = "hosts: [mlflow.example.com]\nauth: {bcrypt_cost: 4}\n"
SEARCH = "/api/2.0/mlflow/experiments/search?max_results=1"


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[RunningStack]:
    with local_stack(tmp_path_factory.mktemp("local"), STACK) as running:
        yield running


def test_only_health_is_open(stack: RunningStack):
    status, headers, _ = stack.request(SEARCH)
    assert status == 401
    assert headers["WWW-Authenticate"] == 'Basic realm="MLflow"'
    assert stack.request(SEARCH, (stack.user, "wrong password"))[0] == 401
    assert stack.request(SEARCH, ("nobody", stack.password))[0] == 401
    status, _, body = stack.request("/health")
    assert (status, body) == (200, b"OK")
    assert stack.request(SEARCH, stack.credentials)[0] == 200


def test_first_user_is_stored_only_as_bcrypt(stack: RunningStack):
    text = (stack.project / "secrets" / "nginx" / "htpasswd").read_text()
    assert text.startswith("admin:$2y$04$")
    assert stack.password not in text
    for log in (stack.data / "logs").iterdir():
        assert stack.password not in log.read_text(errors="replace"), log


def test_mlflow_client_round_trip(stack: RunningStack, tmp_path: Path):
    figures = mlflow_flow.exercise(stack, tmp_path, "local-sqlite")
    assert figures["upload_s"] > 0
    # Where the bundled stores put things.
    assert (stack.data / "mlflow.db").stat().st_size > 0
    stored = list((stack.data / "artifacts").rglob("model.bin"))
    assert len(stored) == 1
    assert stored[0].stat().st_size == mlflow_flow.ARTIFACT_MB * 1024 * 1024


def test_host_header_check(stack: RunningStack):
    """MLflow accepts the stack's public names and refuses others (DNS rebinding defence)."""
    assert stack.request(SEARCH, stack.credentials, host="mlflow.example.com")[0] == 200
    status, _, body = stack.request(SEARCH, stack.credentials, host="attacker.example.net")
    assert status == 403
    assert b"Invalid Host header" in body
    # /health stays exempt, whatever the Host: load balancers probe by address.
    assert stack.request("/health", host="10.1.2.3")[0] == 200


def test_removed_user_is_refused_at_once(stack: RunningStack):
    bob = ("bob", PASSWORD)
    auth_log = stack.data / "logs" / "nginx-auth.log"

    def bobs_checks() -> list[str]:
        lines = verifier_checks(auth_log.read_text, lambda login: stack.request(SEARCH, login))
        return [line.split()[-2] for line in lines if 'user="bob" ' in line]

    add = stack.configgen("htpasswd", "user", "add", "bob", "--password-stdin", stdin=PASSWORD)
    assert add.returncode == 0, add.stderr
    assert stack.request(SEARCH, bob)[0] == 200
    assert stack.request(SEARCH, bob)[0] == 200
    assert bobs_checks() == ["status=200"]  # checked once: the second came from the cache
    cached = fresh_until(DataDir(stack.data).run_dir / "auth-cache", bob)

    removed = stack.configgen("htpasswd", "user", "remove", "bob", "--reload")
    assert removed.returncode == 0, removed.stderr
    assert "reloaded the nginx of the stack running from data" in removed.stdout
    # --reload returns once nginx runs the new configuration: the very next request is refused,
    # while bob's success is still fresh in the auth cache (nginx's own record of it says so):
    # the reload ended it, not its expiry.
    assert stack.request(SEARCH, bob)[0] == 401
    assert int(time.time()) <= cached, "bob's cached success expired first: no proof"
    assert bobs_checks() == ["status=200", "status=401"]  # asked again, and refused
    assert stack.request(SEARCH, stack.credentials)[0] == 200


def test_ui_in_chromium(stack: RunningStack):
    """The MLflow UI loads through nginx in a real browser and shows our experiment."""
    from mlflow import MlflowClient
    from playwright.sync_api import sync_playwright

    from tests.localstack import mlflow_client_env

    with mlflow_client_env(stack):
        MlflowClient(tracking_uri=stack.url).create_experiment("seen-in-the-browser")

    chromium = shutil.which("chromium")
    assert chromium, "chromium is installed by tests/run.sh"
    ARTIFACTS.mkdir(exist_ok=True)
    # Trust exactly the stack's self-signed certificate, by its public key, as a user who
    # accepted it would: any other certificate still fails.
    certificate = x509.load_pem_x509_certificate(stack.ca.read_bytes())
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pin = base64.b64encode(hashlib.sha256(spki).digest()).decode()
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  f"--ignore-certificate-errors-spki-list={pin}"],
        )  # fmt: skip
        try:
            context = browser.new_context(
                http_credentials={"username": stack.user, "password": stack.password}
            )
            page = context.new_page()
            response = page.goto(f"{stack.url}/#/experiments", wait_until="load", timeout=60_000)
            assert response is not None and response.url.startswith("https://")
            page.get_by_text("seen-in-the-browser").first.wait_for(timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / "ui-experiments.png"), full_page=True)
        finally:
            browser.close()
    assert (ARTIFACTS / "ui-experiments.png").stat().st_size > 10_000


def test_no_password_in_any_log(stack: RunningStack):
    """After everything above (wrong and right passwords, the client flow, the browser), no
    log holds a password, its base64 form, or the Authorization header."""
    token = base64.b64encode(f"{stack.user}:{stack.password}".encode()).decode()
    logs = [p for p in (stack.data / "logs").rglob("*") if p.is_file()]
    assert {"nginx-access.log", "nginx-auth.log", "nginx-error.log", "mlflow.log"} <= {
        p.name for p in logs
    }
    assert 'user="bob" status=200' in (stack.data / "logs" / "nginx-auth.log").read_text()
    for path in logs:
        text = path.read_text(errors="replace")
        for needle in (stack.password, PASSWORD, token, "Authorization", "Basic "):
            assert needle not in text, (path.name, needle)
