"""The rendered nginx configuration, served by a real nginx with users made by `configgen`.

Behind it is a small recording HTTP server instead of MLflow (tests/recording.py), because these
tests check what nginx itself must do: who gets in, which headers reach the upstream (never the
password), that large bodies stream through, and what the access log holds. The same fragments
run in front of a real MLflow in the `configgen up` tests.
"""

from __future__ import annotations

import base64
import http.client
import itertools
import os
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from configgen.waiting import wait_until
from tests.recording import RecordingProxy, recording_proxy
from tests.support import PASSWORD, fresh_until, run_configgen, verifier_checks

BODY_BYTES = 5 * 1024 * 1024  # well over nginx's default 1 MB limit


STACK = "hosts: [mlflow.example.com]\nauth:\n  bcrypt_cost: 4\n"


@pytest.fixture
def proxy(project: Path, tmp_path: Path, request) -> Iterator[RecordingProxy]:
    """nginx with the rendered config on a free port, one user, a recording server behind it.
    Parametrize indirectly with extra stack file lines to change settings."""
    (project / "stack" / "stack.yaml").write_text(STACK + getattr(request, "param", ""))
    done = run_configgen(
        "htpasswd", "user", "add", "alice", "--password-stdin", cwd=project, stdin=PASSWORD
    )
    assert done.returncode == 0, done.stderr
    with recording_proxy(project, tmp_path / "logs") as running:
        yield running


def request(
    port: int,
    path: str,
    auth: tuple[str, str] | None = None,
    method: str = "GET",
    body: bytes | None = None,
    host: str = "mlflow.example.com",
    source: str = "127.0.0.1",
    headers: dict | None = None,
) -> http.client.HTTPResponse:
    headers = {"Host": host, **(headers or {})}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(source, 0))
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def test_without_credentials_401_with_a_basic_challenge(proxy: RecordingProxy):
    response = request(proxy.port, "/api/2.0/mlflow/experiments/search")
    assert response.status == 401
    assert response.getheader("WWW-Authenticate") == 'Basic realm="MLflow"'
    assert proxy.seen == []


@pytest.mark.parametrize(
    "auth", [("alice", "not the password"), ("mallory", PASSWORD), ("alice", "")]
)
def test_wrong_credentials_401(proxy: RecordingProxy, auth: tuple[str, str]):
    assert request(proxy.port, "/", auth).status == 401
    assert proxy.seen == []


def test_valid_user_reaches_mlflow_without_the_password(proxy: RecordingProxy):
    response = request(
        proxy.port, "/api/2.0/mlflow/experiments/search?max_results=5", ("alice", PASSWORD)
    )
    assert response.status == 200
    assert response.getheader("Server") == "nginx"  # no version: server_tokens off
    (seen,) = proxy.seen
    assert seen["path"] == "/api/2.0/mlflow/experiments/search?max_results=5"
    headers = {k.lower(): v for k, v in seen["headers"].items()}
    assert "authorization" not in headers
    assert headers["host"] == "mlflow.example.com"
    assert headers["x-forwarded-host"] == "mlflow.example.com"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-real-ip"] == "127.0.0.1"


def test_health_needs_no_credentials(proxy: RecordingProxy):
    response = request(proxy.port, "/health")
    assert response.status == 200
    assert [s["path"] for s in proxy.seen] == ["/health"]
    # Only the exact path is open.
    assert request(proxy.port, "/health/../api/2.0/mlflow/experiments/search").status == 401
    assert request(proxy.port, "/healthz").status == 401


ARTIFACT = "/api/2.0/mlflow-artifacts/artifacts/1/run/artifacts/model.bin"


def test_large_upload_passes_and_unauthenticated_upload_is_refused(proxy: RecordingProxy):
    body = os.urandom(BODY_BYTES)
    response = request(proxy.port, ARTIFACT, ("alice", PASSWORD), "PUT", body)
    assert response.status == 200
    assert proxy.seen[-1]["body"] == BODY_BYTES
    assert request(proxy.port, ARTIFACT, None, "PUT", body).status == 401


def test_uploads_stream_through_instead_of_being_spooled(proxy: RecordingProxy):
    """MLflow sees an upload begin while the client is still sending it."""
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    conn.putrequest("PUT", ARTIFACT)
    conn.putheader(
        "Authorization", "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    )
    conn.putheader("Content-Length", str(BODY_BYTES))
    conn.endheaders()
    conn.send(b"x" * (BODY_BYTES // 5))
    assert proxy.upstream.started.wait(timeout=5), (
        "nginx held the upload back until it was complete"
    )
    assert proxy.seen == []  # and it is indeed not complete yet
    conn.send(b"x" * (BODY_BYTES - BODY_BYTES // 5))
    assert conn.getresponse().status == 200
    conn.close()
    assert proxy.seen[-1]["body"] == BODY_BYTES


def access_log_after(proxy: RecordingProxy) -> str:
    """The access log once the lines of every request answered so far are in: nginx writes
    a request's line as it finishes it, so a later request's line comes after them."""
    marker = f"/log-marker-{time.monotonic_ns()}"
    assert request(proxy.port, marker, ("alice", PASSWORD)).status == 200
    path = proxy.logs / "nginx-access.log"
    deadline = time.monotonic() + 30
    while marker not in (log := path.read_text() if path.exists() else ""):
        assert time.monotonic() < deadline, "the marker request never reached the access log"
        time.sleep(0.05)
    return log


def test_access_log_names_the_user_but_never_the_credentials(proxy: RecordingProxy):
    request(proxy.port, "/", ("alice", PASSWORD))
    request(proxy.port, "/", ("alice", "a wrong guess"))
    request(proxy.port, "/health")
    log = access_log_after(proxy)
    assert '"GET / HTTP/1.1" 200' in log
    assert "alice" in log
    for secret in (PASSWORD, "a wrong guess"):
        assert secret not in log
        assert base64.b64encode(f"alice:{secret}".encode()).decode() not in log
    assert "/health" not in log  # probes are not logged


def test_python_clients_are_kept_to_proxied_artifact_transfers(proxy: RecordingProxy):
    """No multipart/presigned advertisement reaches the Python client; the UI's copy does."""
    assert request(proxy.port, "/api/3.0/mlflow/server-info", ("alice", PASSWORD)).status == 404
    assert proxy.seen == []
    ui = request(proxy.port, "/ajax-api/3.0/mlflow/server-info", ("alice", PASSWORD))
    assert ui.status == 200
    assert proxy.seen[-1]["path"] == "/ajax-api/3.0/mlflow/server-info"


# -- the cached verification (docs/auth.md) ---------------------------------------------------

BOB = ("bob", "another long passphrase")


# Where the log markers of `checks` come from: each from an address of its own, so that they
# use up no client's allowance under the verifier's limits.
MARKER_SOURCES = itertools.cycle(f"127.0.0.{i}" for i in range(200, 250))


def checks(proxy: RecordingProxy) -> list[str]:
    """The verifier's log: one line per bcrypt check (cache miss), every one made so far."""
    path = proxy.logs / "nginx-auth.log"
    return verifier_checks(
        lambda: path.read_text() if path.exists() else "",
        lambda login: request(proxy.port, "/x", login, source=next(MARKER_SOURCES)),
    )


def statuses_of(proxy: RecordingProxy, user: str) -> list[str]:
    """The verifier's answers to the checks of `user`'s passwords so far."""
    return [line.split()[-2] for line in checks(proxy) if f'user="{user}" ' in line]


def cached_until(proxy: RecordingProxy, login: tuple[str, str]) -> int:
    return fresh_until(proxy.run.root / "auth-cache", login)


def wait_until_expired(until: int) -> None:
    """Until nginx's clock (whole seconds) has passed `until`."""
    while int(time.time()) <= until:
        time.sleep(until + 1 - time.time() + 0.01)


def test_a_valid_credential_is_hashed_once(proxy: RecordingProxy):
    for _ in range(20):
        assert request(proxy.port, "/x", ("alice", PASSWORD)).status == 200
    for _ in range(5):
        assert request(proxy.port, "/x", ("alice", PASSWORD), "POST", b"{}").status == 200
    lines = checks(proxy)
    assert len(lines) == 1, lines
    assert 'user="alice" status=200' in lines[0]


def test_failures_are_never_cached(proxy: RecordingProxy):
    for _ in range(3):
        assert request(proxy.port, "/x", ("alice", "a wrong guess")).status == 401
    assert [line.split()[-2] for line in checks(proxy)] == ["status=401"] * 3


def concurrently(calls: list) -> list:
    """Run the zero-argument `calls` at once; their results in order."""
    results: list = [None] * len(calls)

    def run(i: int) -> None:
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def hashed(lines: list[str]) -> list[str]:
    """Checks that got past the limits (some after waiting their turn)."""
    return [line for line in lines if "limit=PASSED" in line or "limit=DELAYED" in line]


@pytest.mark.parametrize(
    "proxy",
    ["  verify_rate_per_client: 1\n  verify_burst: 4\n  verify_rate_total: 100\n"],
    indirect=True,
)
def test_misses_are_limited_per_client_and_cached_users_are_not(proxy: RecordingProxy):
    port = proxy.port
    assert request(port, "/x", ("alice", PASSWORD)).status == 200  # now cached
    started = time.monotonic()
    guesses = [lambda i=i: request(port, "/x", ("alice", f"guess {i}")).status for i in range(10)]
    valid = [lambda: (request(port, "/x", ("alice", PASSWORD)).status, time.monotonic())] * 5
    results = concurrently([*guesses, *valid])
    # Checked and wrong: 401; refused by the limits before any hashing: 429.
    assert set(results[:10]) <= {401, 429}, results[:10]
    # The cached user was not held up by the queue of guesses.
    assert all(code == 200 and at - started < 1 for code, at in results[10:]), results[10:]
    lines = checks(proxy)
    rejected = [line for line in lines if "limit=REJECTED" in line]
    assert results[:10].count(429) == len(rejected), (results, lines)
    # alice's first check, then the guesses: about one at the rate and four in the burst (some
    # waiting their turn, logged DELAYED), the rest refused without hashing.
    assert len(lines) == 11, lines
    assert 1 + 3 <= len(hashed(lines)) <= 1 + 5, lines
    assert len(rejected) >= 5, lines
    assert any("limit=DELAYED" in line for line in lines), lines
    # Another client address has its own allowance.
    assert request(port, "/x", ("carol", "x"), source="127.0.0.2").status == 401
    assert "client=127.0.0.2" in checks(proxy)[-1]
    assert "limit=PASSED" in checks(proxy)[-1]


@pytest.mark.parametrize(
    "proxy",
    ["  verify_rate_per_client: 100\n  verify_burst: 4\n  verify_rate_total: 1\n"],
    indirect=True,
)
def test_misses_are_limited_in_all(proxy: RecordingProxy):
    sources = [f"127.0.0.{i}" for i in range(2, 12)]
    concurrently([lambda s=s: request(proxy.port, "/x", ("alice", f"guess from {s}"), source=s)
                  for s in sources])  # fmt: skip
    lines = checks(proxy)
    assert len({line.split()[1] for line in lines}) == len(sources)  # ten clients ...
    assert 3 <= len(hashed(lines)) <= 6, lines  # ... share one allowance


@contextmanager
def flood(port: int, sources: list[str]) -> Iterator[list[int]]:
    """Wrong passwords from `sources`, as fast as they come back, until the block ends; yields
    the statuses they got so far."""
    stop = threading.Event()
    statuses: list[int] = []

    def guess(source: str) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            statuses.append(request(port, "/x", ("alice", f"{source} {n}"), source=source).status)

    threads = [threading.Thread(target=guess, args=(s,)) for s in sources]
    for thread in threads:
        thread.start()
    try:
        yield statuses
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def wait_for(condition, what: str, timeout: float = 30) -> None:
    wait_until(condition, timeout, what)


@pytest.mark.parametrize(
    "proxy",
    ["  cache_seconds: 1\n  verify_rate_per_client: 1\n  verify_burst: 4\n"
     "  verify_rate_total: 2\n"],
    indirect=True,
)  # fmt: skip
def test_a_recent_login_keeps_working_through_a_guessing_flood(proxy: RecordingProxy):
    port = proxy.port
    assert request(port, "/x", ("alice", PASSWORD)).status == 200
    fresh_until = cached_until(proxy, ("alice", PASSWORD))
    sources = [f"127.0.0.{i}" for i in range(2, 8)]
    with flood(port, sources) as statuses:
        # Until the limits are full, and alice's cached check has expired (when nginx's own
        # record of it says).
        wait_for(lambda: statuses.count(429) >= 20, "the flood never filled the limits")
        wait_until_expired(fresh_until)
        answers = [request(port, "/x", ("alice", PASSWORD)).status for _ in range(10)]
        assert answers == [200] * 10, answers
        # A change with a reload (a new generation in the key) still revokes at once: nothing
        # cached before counts, whether the limits refuse the new check (429) or not (401).
        assert proxy.configgen("htpasswd", "user", "remove", "alice").returncode == 0
        proxy.reload()
        assert request(port, "/x", ("alice", PASSWORD)).status in (401, 429)
        flooded = len(statuses)
    lines = checks(proxy)
    # Guessing stayed held to the rate: one check a second in all, plus the burst.
    guesses = [line for line in lines if 'user="alice"' in line and "limit=REJECTED" not in line]
    assert len(guesses) <= flooded * 0.2, (len(guesses), flooded)
    # alice's re-checks (from 127.0.0.1; the flood came from the others) were refused by the
    # limits, and her earlier success served instead.
    assert any("client=127.0.0.1 " in line and "limit=REJECTED" in line for line in lines), lines


def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(proxy: RecordingProxy):
    request(proxy.port, "/x", ("alice", "wrong"), headers={"X-Forwarded-For": "198.51.100.7"})
    request(proxy.port, "/x", ("alice", "wrong"), headers={"X-MLflow-Auth-Client": "10.9.9.9"})
    assert [line.split()[1] for line in checks(proxy)] == ["client=127.0.0.1"] * 2


@pytest.mark.parametrize("proxy", ["proxy: {trusted_proxies: [127.0.0.0/8]}\n"], indirect=True)
def test_x_forwarded_for_from_a_trusted_load_balancer_names_the_client(proxy: RecordingProxy):
    request(proxy.port, "/x", ("alice", "wrong"), headers={"X-Forwarded-For": "198.51.100.7"})
    assert checks(proxy)[-1].split()[1] == "client=198.51.100.7"


CACHE_SECONDS = 4


@pytest.mark.parametrize("proxy", [f"  cache_seconds: {CACHE_SECONDS}\n"], indirect=True)
def test_removal_applies_at_once_with_reload_and_within_the_lifetime_without(proxy: RecordingProxy):
    """Each change is made in the project first, then a login is checked and cached with the
    copy nginx still reads, then the copy is updated (what `configgen up`'s supervisor does):
    the cached success is then fresh for as long as the stack file says, whatever the time a
    `configgen` run takes."""
    alice = ("alice", PASSWORD)
    add = proxy.configgen("htpasswd", "user", "add", BOB[0], "--password-stdin", stdin=BOB[1])
    assert add.returncode == 0, add.stderr
    assert request(proxy.port, "/x", BOB).status == 200

    # Without a reload the cached success stands until it expires, after cache_seconds
    # (nginx counts whole seconds: and up to one more).
    assert run_configgen("htpasswd", "user", "remove", "alice", cwd=proxy.project).returncode == 0
    before = int(time.time())
    assert request(proxy.port, "/x", alice).status == 200
    fresh_until = cached_until(proxy, alice)
    assert before <= fresh_until - CACHE_SECONDS <= int(time.time())
    proxy.sync()
    assert request(proxy.port, "/x", alice).status == 200  # the verifier's copy has no alice:
    assert statuses_of(proxy, "alice") == ["status=200"]  # the cache answered
    wait_until_expired(fresh_until)
    assert request(proxy.port, "/x", alice).status == 401

    # With a reload (a new generation in the cache key) the change is immediate, while the old
    # password's success is still fresh in the cache ...
    new_password = (BOB[0], "a brand new passphrase")
    passwd = run_configgen("htpasswd", "user", "passwd", BOB[0], "--password-stdin",
                           cwd=proxy.project, stdin=new_password[1])  # fmt: skip
    assert passwd.returncode == 0
    assert_revoked_by_the_reload(proxy, BOB)
    assert request(proxy.port, "/x", new_password).status == 200

    # ... even when the users file ends up as it was at the last reload: a user added and
    # cached without a reload, then removed with one.
    carol = ("carol", "yet another passphrase")
    add = proxy.configgen("htpasswd", "user", "add", carol[0], "--password-stdin", stdin=carol[1])
    assert add.returncode == 0
    assert run_configgen("htpasswd", "user", "remove", carol[0], cwd=proxy.project).returncode == 0
    assert_revoked_by_the_reload(proxy, carol)


def assert_revoked_by_the_reload(proxy: RecordingProxy, login: tuple[str, str]) -> None:
    """`login`, changed in the project but not yet in nginx's copy, logs in twice, the second
    time from the cache; with the copy updated and nginx reloaded it is refused while its
    cached success is still fresh: the reload ended it, not its expiry. (The verifier's log
    is read before and after, not in between: its markers would take time from the window.)"""
    checked_before = len(statuses_of(proxy, login[0]))
    assert request(proxy.port, "/x", login).status == 200
    assert request(proxy.port, "/x", login).status == 200
    fresh_until = cached_until(proxy, login)
    proxy.sync()
    proxy.reload()
    assert request(proxy.port, "/x", login).status == 401
    assert int(time.time()) <= fresh_until, "the cached success expired first: no proof"
    # The first login was checked (unless still cached from before), the second was not; the
    # one after the reload was checked again, and refused.
    after = statuses_of(proxy, login[0])[checked_before:]
    assert after in (["status=200", "status=401"], ["status=401"]), after


def test_cached_credentials_live_only_on_tmpfs(proxy: RecordingProxy):
    assert request(proxy.port, "/x", ("alice", PASSWORD)).status == 200
    token = base64.b64encode(f"alice:{PASSWORD}".encode())
    mounts = {
        line.split()[1]: line.split()[2] for line in Path("/proc/mounts").read_text().splitlines()
    }
    assert mounts.get("/dev/shm") == "tmpfs"
    cache = proxy.run.root / "auth-cache"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    entries = [p for p in cache.rglob("*") if p.is_file()]
    assert len(entries) == 1 and token in entries[0].read_bytes()  # hence tmpfs, private
    for folder in (proxy.run.conf, proxy.project):
        for path in Path(folder).rglob("*"):
            if path.is_file():
                assert token not in path.read_bytes(), path
