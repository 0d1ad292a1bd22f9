"""Faults a production stack meets, on the local runner with real parts: MLflow killed while a
client logs, the database gone and back under a logging client, `configgen htpasswd` killed
mid-write, and a full artifact disk. (The compose stack's own faults, a killed MLflow
container and a late database, are in tests/test_compose.py.) In each: clients get a quick,
clear error, the stack heals itself, and nothing that was acknowledged is lost."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from mlflow import MlflowClient

from configgen import procfs
from configgen.waiting import wait_until
from tests.localstack import RunningStack, environ, local_stack, mlflow_client_env
from tests.servers import mariadb
from tests.support import PASSWORD, REPO, clean_env, run_configgen

pytestmark = pytest.mark.slow

SEARCH = "/api/2.0/mlflow/experiments/search?max_results=1"
# The client's own limit for one call: a failure that took this long was the client giving up
# on a hung server, not an error the stack gave.
CLIENT_TIMEOUT = 20
# What the stack promises a client while a part is away: an error within this (docs/security.md,
# "Faults"), far below CLIENT_TIMEOUT, so a hang fails the test instead of passing as an error.
QUICK = 5


@dataclass
class Logger:
    """A client logging one metric step after another, as a training loop does."""

    stack: RunningStack
    acknowledged: list[int] = field(default_factory=list)  # steps the server confirmed
    failures: list[tuple[float, str]] = field(default_factory=list)  # seconds taken, error
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, run_id: str) -> None:
        client = MlflowClient(tracking_uri=self.stack.url)
        step = 0
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
                self.acknowledged.append(step)
            except Exception as err:  # every failure is a finding to assert on
                self.failures.append((time.monotonic() - started, str(err).splitlines()[0]))
                time.sleep(0.2)
            step += 1


@contextmanager
def logging_client(stack: RunningStack) -> Iterator[tuple[Logger, str]]:
    """A Logger in a thread; the client does not retry, so every failure is seen."""
    no_retries = environ(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
                         MLFLOW_HTTP_REQUEST_TIMEOUT=str(CLIENT_TIMEOUT))  # fmt: skip
    with mlflow_client_env(stack), no_retries:
        client = MlflowClient(tracking_uri=stack.url)
        experiment = client.create_experiment(f"faults-{time.monotonic_ns()}")
        run_id = client.create_run(experiment).info.run_id
        logger = Logger(stack)
        thread = threading.Thread(target=logger.run, args=(run_id,), daemon=True)
        thread.start()
        try:
            yield logger, run_id
        finally:
            logger.stop.set()
            thread.join(timeout=60)


def logged_steps(client: MlflowClient, run_id: str) -> set[int]:
    return {m.step for m in client.get_metric_history(run_id, "loss")}


def test_mlflow_killed_while_a_client_logs(tmp_path: Path):
    with local_stack(tmp_path, "auth: {bcrypt_cost: 4}\n") as stack:
        supervisor = int((stack.data / "up.pid").read_text())
        with logging_client(stack) as (logger, run_id):
            wait_until(lambda: len(logger.acknowledged) >= 20, 60, "no metric logged")
            mlflow = next(
                p for p in procfs.descendants(supervisor)
                if b"mlflow\0server" in Path(f"/proc/{p}/cmdline").read_bytes()
            )  # fmt: skip
            os.kill(mlflow, signal.SIGKILL)
            wait_until(lambda: logger.failures, 30, "no client noticed the crash")
            before = len(logger.acknowledged)
            healed = wait_until(lambda: len(logger.acknowledged) >= before + 20, 120,
                                "the client never got through again")  # fmt: skip
        log = (stack.data / "logs" / "up.log").read_text()
        assert "MLflow exited with code -9; restarting it in 1 s" in log
        # Quick, clear errors while MLflow was away: nginx's 502, not a hang.
        assert all(seconds < QUICK for seconds, _ in logger.failures), logger.failures
        assert any("502" in error for _, error in logger.failures), logger.failures
        with mlflow_client_env(stack):
            stored = logged_steps(MlflowClient(tracking_uri=stack.url), run_id)
        assert set(logger.acknowledged) <= stored  # nothing acknowledged was lost
        print(f"MLflow killed: {len(logger.failures)} failed calls, "
              f"{len(logger.acknowledged)} acknowledged, healed in {healed:.1f} s")  # fmt: skip


def test_database_stopped_and_restarted_under_a_logging_client(tmp_path_factory):
    services = tmp_path_factory.mktemp("db")
    project = tmp_path_factory.mktemp("db-project")
    with mariadb(services) as db:
        stack_yaml = (
            "auth: {bcrypt_cost: 4}\n"
            f"mlflow: {{backend_store: 'mysql+pymysql://{db.user}@127.0.0.1:{db.port}/"
            f"{db.database}'}}\n"
        )
        with local_stack(project, stack_yaml, MLFLOW_DB_PASSWORD=db.password) as stack:
            with logging_client(stack) as (logger, run_id):
                wait_until(lambda: len(logger.acknowledged) >= 20, 60, "no metric logged")
                db.stop()
                wait_until(lambda: len(logger.failures) >= 3, 60, "no client noticed")
                # While the database is away: errors, quick ones, and /health still answers
                # (it checks MLflow, not the database) so the load balancer keeps the node.
                assert stack.request("/health")[0] == 200
                # The error is MLflow's "temporarily unavailable" (503, which a client with
                # retries retries), not nginx's 502 for a dead MLflow nor a 500.
                status, _, body = stack.request(SEARCH, stack.credentials)
                assert status == 503, (status, body)
                assert json.loads(body)["error_code"] == "TEMPORARILY_UNAVAILABLE", body
                during = len(logger.acknowledged)
                time.sleep(2)
                db.start()
                healed = wait_until(lambda: len(logger.acknowledged) >= during + 20, 120,
                                    "no full service after the database came back")  # fmt: skip
            assert stack.request(SEARCH, stack.credentials)[0] == 200
            with mlflow_client_env(stack):
                stored = logged_steps(MlflowClient(tracking_uri=stack.url), run_id)
        assert set(logger.acknowledged) <= stored
        # Every failed call was that 503, and came quickly: none was the client giving up.
        assert all(seconds < QUICK for seconds, _ in logger.failures), logger.failures
        assert all("too many 503 error responses" in error for _, error in logger.failures), (
            logger.failures
        )
        stored_in_db = int(db.sql("SELECT COUNT(DISTINCT step) FROM mlflow.metrics"))
        assert stored_in_db >= len(set(logger.acknowledged))
        print(f"database down: {len(logger.failures)} failed calls, healed in {healed:.1f} s")


# `configgen htpasswd user add` stopped right before it renames its new file into place.
PAUSE_BEFORE_RENAME = """
import os, sys, time
from pathlib import Path
def paused(src, dst, *args, **kwargs):
    Path(os.environ["PAUSED_MARKER"]).write_text(f"{src}\\n")
    time.sleep(3600)
os.replace = paused
from configgen.cli import main
sys.exit(main())
"""


def users(project: Path) -> set[str]:
    done = run_configgen("htpasswd", "user", "list", cwd=project)
    assert done.returncode == 0, done.stderr  # parseable: never a torn file
    return set(done.stdout.split())


def test_htpasswd_killed_between_write_and_rename(configgen, project: Path, tmp_path: Path):
    assert configgen("htpasswd", "user", "add", "alice", "--password-stdin",
                     stdin=PASSWORD).returncode == 0  # fmt: skip
    users_file = project / "secrets" / "nginx" / "htpasswd"
    before = users_file.read_bytes()
    marker = tmp_path / "paused"
    child = subprocess.Popen(
        [sys.executable, "-c", PAUSE_BEFORE_RENAME, "htpasswd", "user", "add", "bob",
         "--password-stdin"],
        cwd=project, stdin=subprocess.PIPE, env=clean_env(PAUSED_MARKER=str(marker),
                                                          PYTHONPATH=str(REPO)),
    )  # fmt: skip
    child.stdin.write(f"{PASSWORD}\n".encode())
    child.stdin.close()
    wait_until(marker.exists, 30, "the writer never reached its rename")
    temporary = Path(marker.read_text().strip())
    assert temporary.parent == users_file.parent and b"bob:" in temporary.read_bytes()
    child.kill()
    child.wait()
    assert users_file.read_bytes() == before  # the old file, whole
    assert users(project) == {"alice"}
    # The next change takes the lock the dead writer held, and completes.
    assert configgen("htpasswd", "user", "add", "bob", "--password-stdin",
                     stdin=PASSWORD).returncode == 0  # fmt: skip
    assert users(project) == {"alice", "bob"}


@dataclass
class Watched:
    """One `configgen htpasswd user add` as seen from outside: seconds from its start."""

    writing: float | None = None  # when its temporary users file was first seen
    renamed: float | None = None  # when the users file was seen replaced (a new inode)
    ended: float = 0.0  # when it exited or was killed
    killed: bool = False  # by us, while it still ran


def watched_add(project: Path, name: str, kill_now) -> Watched:
    """Run `user add NAME`, watching the users folder for its temporary file and its rename;
    `kill_now(seconds, watched)` is asked all along whether to SIGKILL it now."""
    folder = project / "secrets" / "nginx"
    users_file = folder / "htpasswd"
    inode = users_file.stat().st_ino

    def temporaries() -> set[str]:  # the users file's, not the generation's (fileio.py names)
        names = os.listdir(folder)
        return {n for n in names if n.startswith(".htpasswd.") and "generation" not in n}

    left = temporaries()  # by earlier kills
    run = Watched()
    started = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, "-m", "configgen", "htpasswd", "user", "add", name, "--password-stdin"],
        cwd=project, stdin=subprocess.PIPE, env=clean_env(),
    )  # fmt: skip
    child.stdin.write(f"{PASSWORD}\n".encode())
    child.stdin.close()
    while child.poll() is None:
        now = time.monotonic() - started
        if run.writing is None and temporaries() - left:
            run.writing = now
        if run.renamed is None and users_file.stat().st_ino != inode:
            run.renamed = now
        if kill_now(now, run):
            child.kill()
            run.killed = True
            break
        time.sleep(0.0005)
    child.wait()
    run.ended = time.monotonic() - started
    if run.renamed is None and users_file.stat().st_ino != inode:
        run.renamed = run.ended  # between the last look and the end
    if run.killed:
        run.killed = child.returncode == -signal.SIGKILL  # it had not exited on its own
    else:
        assert child.returncode == 0, f"user add {name} failed on its own"
    return run


def test_htpasswd_killed_at_random_moments(configgen, project: Path):
    assert configgen("htpasswd", "user", "add", "alice", "--password-stdin",
                     stdin=PASSWORD).returncode == 0  # fmt: skip
    # When the rename comes in a run, and how long the run goes on after it, measured here:
    # the kills are spread over both parts, whatever this machine's speed. (The first runs
    # are the slow ones, with cold caches: the rename time kept is the fastest seen so far.)
    probes = [watched_add(project, f"probe{i}", lambda now, run: False) for i in range(2)]
    assert all(p.renamed is not None and p.renamed < p.ended for p in probes), probes
    first_rename = min(p.renamed for p in probes)
    after_rename = min(p.ended - p.renamed for p in probes)
    known = {"alice", "probe0", "probe1"}
    seen = set()
    rng = random.Random(7)  # noqa: S311 - kill timings, not secrets
    for attempt in range(12):
        name = f"user{attempt}"
        if attempt % 3 == 0:  # before the rename: at a moment of the measured time up to it
            at = rng.uniform(0.05, 0.95) * first_rename
            run = watched_add(project, name, lambda now, run, at=at: now >= at)
        elif attempt % 3 == 1:  # while the new file is written, before it replaces the old
            run = watched_add(project, name, lambda now, run: run.writing is not None)
        else:  # after the rename: at a moment of the measured rest of the run
            delay = rng.uniform(0, 1) * after_rename
            run = watched_add(project, name, lambda now, run, delay=delay:
                              run.renamed is not None and now >= run.renamed + delay)  # fmt: skip
            assert run.renamed is not None, run
        if run.renamed is not None and run.renamed < run.ended:
            first_rename = min(first_rename, run.renamed)
        now = users(project)
        assert now in (known, known | {name}), run  # the old file or the new, nothing else
        if run.renamed is not None:
            assert name in now, run  # replaced: the new file, whole
        if run.killed:
            seen.add(name in now)
        if name not in now:  # killed before the rename: add it for real, as a user would retry
            assert configgen("htpasswd", "user", "add", name, "--password-stdin",
                             stdin=PASSWORD).returncode == 0  # fmt: skip
        known.add(name)
        assert users(project) == known
    # Of the kills that found the process still running, some came before its rename and
    # some after.
    assert seen == {True, False}, "the kills should land both before and after the rename"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 20 MB file system for the artifacts (tmpfs: needs root, as the suite runs)."""
    folder = tmp_path / "small-disk"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def test_full_artifact_disk(tmp_path: Path, small_disk: Path):
    stack_yaml = (
        f"auth: {{bcrypt_cost: 4}}\nmlflow: {{artifact_destination: 'file://{small_disk}'}}\n"
    )
    project = tmp_path / "project"
    project.mkdir()
    with local_stack(project, stack_yaml) as stack, mlflow_client_env(stack):
        client = MlflowClient(tracking_uri=stack.url)
        run_id = client.create_run(client.create_experiment("full-disk")).info.run_id
        big = tmp_path / "big.bin"
        big.write_bytes(os.urandom(30 * 1024 * 1024))
        started = time.monotonic()
        with environ(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0"), pytest.raises(Exception) as failed:
            client.log_artifact(run_id, str(big))
        seconds = time.monotonic() - started
        message = str(failed.value)
        assert "500" in message or "No space left" in message, message
        assert seconds < 30
        # The server stays up and keeps serving everything that needs no disk.
        assert stack.request("/health")[0] == 200
        assert stack.request(SEARCH, stack.credentials)[0] == 200
        client.log_metric(run_id, "after", 1.0)
        mlflow_log = (stack.data / "logs" / "mlflow.log").read_text()
        assert "No space left on device" in mlflow_log
        # Once space is freed, artifacts work again, with no restart.
        for leftover in small_disk.rglob("big.bin"):
            leftover.unlink()
        small = tmp_path / "small.txt"
        small.write_text("fits")
        client.log_artifact(run_id, str(small))
        assert [f.path for f in client.list_artifacts(run_id)] == ["small.txt"]
