"""No route to MLflow without a login, but `GET /health`: the crafted requests of
tests/crafted.py through a real nginx, in front of a recording upstream and of a real MLflow
started by `configgen up` (the compose and Elastic Beanstalk tests send the same table)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import crafted
from tests.localstack import ARTIFACTS, RunningStack, local_stack
from tests.recording import RecordingProxy, recording_proxy
from tests.support import PASSWORD, run_configgen

HOST = "mlflow.example.com"
# What nginx itself answers: the open location refuses other methods (403) and bodies (413),
# paths that climb above the root are malformed (400), closed paths are 404, the rest 401.
EXPECTED = {
    f"POST {crafted.GATEWAY}%23/../../../../../../health HTTP/1.1": [403],
    f"GET {crafted.GATEWAY}%23/../../../../../../health": [200],  # MLflow's /health, no more
    "POST /gateway/proxy/EP%2F..%2F..%2F..%2F..%2Fhealth HTTP/1.1": [400],
    "GET //health": [200],
    "GET /HEALTH": [401],
    "TRACE /health": [405],
    "PUT /health, 3 MB": [413],
    "GET /health, 3 MB body": [413],
    "GET /health smuggling a POST in its body": [400],
    "GET /health then a pipelined POST": [200, 403],
    "GET /api/3.0/mlflow/server-info": [404],
    "GET /_mlflow_auth": [404],
    "POST /gateway/mlflow/v1/chat/completions HTTP/1.1": [404],  # the AI Gateway is off
    "POST /ajax-api/3.0/mlflow/assistant/message HTTP/1.1": [404],
    "POST /api/2.0/mlflow/experiments/create HTTP/1.1": [403],  # another site's page
    f"GET {crafted.SEARCH}": [401],
    "HEAD /health": [200],
}


def record(runner: str, answers: dict[str, list[int]]) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"crafted-requests-{runner}.json").write_text(json.dumps(answers, indent=1))


@pytest.fixture
def proxy(project: Path, tmp_path: Path) -> Iterator[RecordingProxy]:
    (project / "stack" / "stack.yaml").write_text(
        f"hosts: [{HOST}]\nauth: {{bcrypt_cost: 4}}\ntls: {{mode: off}}\n"
    )
    done = run_configgen(
        "htpasswd", "user", "add", "alice", "--password-stdin", cwd=project, stdin=PASSWORD
    )
    assert done.returncode == 0, done.stderr
    with recording_proxy(project, tmp_path / "logs") as running:
        yield running


def test_crafted_requests_reach_only_a_fixed_get_health(proxy: RecordingProxy):
    assert len(crafted.TABLE) >= 30
    answers = crafted.send_table("127.0.0.1", proxy.port, HOST)
    record("nginx", answers)
    assert {name: answers[name] for name in EXPECTED} == EXPECTED
    assert proxy.seen, "the open requests did reach the upstream"
    for seen in proxy.seen:
        # The fixed request: none of the client's method, path, query, body or headers.
        assert (seen["method"], seen["path"], seen["body"]) == ("GET", "/health", 0), seen
        assert set(seen["headers"]) == {"Host", "Connection"}, seen
    # With a login, a crafted path is passed on as it came: here nginx sees a search, the
    # upstream a call to the (blocked) gateway. What a user may do is then MLflow's to decide,
    # which is why a feature that is off is switched off in MLflow, not only in nginx.
    token = "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    target = f"{crafted.GATEWAY}%23/../../../../../..{crafted.SEARCH}"
    data = f"GET {target} HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: {token}\r\n" \
        "Connection: close\r\n\r\n"  # fmt: skip
    assert crafted.send("127.0.0.1", proxy.port, data.encode()) == [200]
    assert proxy.seen[-1]["path"] == target


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[RunningStack]:
    """The default stack file (HTTPS, and plain HTTP for /health and redirects)."""
    project = tmp_path_factory.mktemp("crafted")
    with local_stack(project, "auth: {bcrypt_cost: 4}\n") as running:
        yield running


def test_crafted_requests_never_reach_mlflow_through_configgen_up(stack: RunningStack):
    log = stack.data / "logs" / "mlflow.log"
    answers = {}
    seen = crafted.assert_only_health_reached_mlflow(
        log.read_text,
        lambda: answers.update(crafted.send_to_stack(stack)),
        lambda path: stack.request(path, stack.credentials)[0],
    )
    record("local", answers)
    assert seen, "the open requests did reach MLflow"
    # The HTTPS server answers as the bare nginx did; plain HTTP redirects all but /health.
    assert {name: answers["https"][name] for name in EXPECTED} == EXPECTED
    assert answers["http"][f"GET {crafted.SEARCH}"] == [308]
