"""The platform image (stack/platform/) run the way Heroku and AWS App Runner run it, under a
real Docker engine: built from its own folder as Heroku builds it, a random non-root UID, a
read-only root with a tmpfs /tmp, `$PORT`, `DATABASE_URL=postgres://...` to a real PostgreSQL
(Debian's, in a container), artifacts on the S3 stand-in.

The release command runs first in its own container; then two "dynos" share the database, the
whole MLflow client flow runs through each, and what one logs the other reads; then an App
Runner-style container (PORT=8080). Figures (boot to `$PORT`, to /health 200, memory with 1
and 2 workers, image size) go to test-artifacts/platform-figures.json.
"""

from __future__ import annotations

import datetime
import http.client
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
import yaml
from mlflow import MlflowClient
from passlib.apache import HtpasswdFile

from configgen import procfs
from tests import dockerhost, mlflow_flow
from tests.dockerhost import docker
from tests.localstack import RunningStack, free_port, mlflow_client_env
from tests.support import PASSWORD, REPO

pytestmark = pytest.mark.slow

PREFIX = "mlflow-platform-e2e"
IMAGE = "mlflow-stack/platform:3.17.2"
BUCKET = "platform-artifacts"
DB_PASSWORD = "db-password-platform-test"
S3_KEYS = {"AWS_ACCESS_KEY_ID": "platformaccesskey", "AWS_SECRET_ACCESS_KEY": "platformsecret1"}
UID = 23456  # no user of that id exists in the image, as on Heroku
BIND_SECONDS = 2.0  # the bound: Heroku allows 60


def ip(container: str) -> str:
    return docker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", container).stdout.strip()


def remove(*containers: str) -> None:
    docker("rm", "-f", "-v", *containers, check=False)


def started_at(container: str) -> float:
    """When the container's process started, by the engine's clock (this machine's)."""
    text = docker("inspect", "-f", "{{.State.StartedAt}}", container).stdout.strip()
    whole, _, fraction = text.rstrip("Z").partition(".")
    moment = datetime.datetime.fromisoformat(whole).replace(tzinfo=datetime.UTC)
    return moment.timestamp() + float(f"0.{fraction or 0}")


def status(port: int, path: str = "/health", headers: dict[str, str] | None = None,
           auth: str | None = None) -> int | None:  # fmt: skip
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        sent = dict(headers or {})
        if auth:
            sent["Authorization"] = "Basic " + auth
        conn.request("GET", path, headers=sent)
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


@dataclass
class Dyno(RunningStack):
    """One container of the image, published on a loopback port."""

    container: str = ""

    def access_log(self) -> str | None:
        return logs(self.container)


def logs(container: str) -> str:
    done = docker("logs", container, check=False)
    return done.stdout + done.stderr


@dataclass
class Platform:
    database: str
    objectstore: str
    env: dict[str, str]  # what every container of the image gets
    users: str
    boots: dict[str, dict[str, float]]

    def run(self, name: str, *args: str, env: dict[str, str], port: int | None = None,
            detach: bool = True) -> str:  # fmt: skip
        """The image as Heroku runs it: another UID, read-only, a tmpfs /tmp."""
        remove(name)
        published = ["-p", f"127.0.0.1:{port}:{env['PORT']}"] if port else []
        options = ["--name", name, "--user", f"{UID}:{UID}", "--read-only",
                   "--tmpfs", "/tmp:rw,size=512m", "--memory", "1g", *published]  # fmt: skip
        variables = [f"--env={k}={v}" for k, v in env.items()]
        if detach:
            return docker("run", "-d", *options, *variables, IMAGE, *args).stdout.strip()
        return docker("run", *options, *variables, IMAGE, *args, check=False, timeout=600)

    def release(self, name: str):
        """`mlflow-platform release`, as heroku.yml's release phase runs it: a one-off
        container with the app's variables."""
        return self.run(name, "mlflow-platform", "release", env=self.env, detach=False)

    def start_dyno(self, name: str, env: dict[str, str]) -> Dyno:
        """Start one, timing from the container's start to nginx's first answer (503 while
        MLflow starts) and to /health 200."""
        port = free_port()
        self.run(name, env=self.env | env, port=port)
        first_answer = healthy = None
        seen = []
        deadline = time.monotonic() + 240
        while healthy is None:
            code = status(port)
            now = time.time()
            if code is not None and first_answer is None:
                first_answer = now
            if code is not None and code not in seen:
                seen.append(code)
            if code == 200:
                healthy = now
            assert time.monotonic() < deadline, logs(name)[-3000:]
            time.sleep(0.02)
        start = started_at(name)
        self.boots[name] = {"to_port_bound_s": round(first_answer - start, 2),
                            "to_health_200_s": round(healthy - start, 2),
                            "statuses": seen}  # fmt: skip
        assert seen[0] == 503, (seen, logs(name)[-2000:])
        assert first_answer - start < BIND_SECONDS, self.boots[name]
        return Dyno(Path("/nonexistent"), Path("/nonexistent"), port, "alice", PASSWORD, {},
                    container=name)  # fmt: skip


@pytest.fixture(scope="module")
def platform(tmp_path_factory) -> Iterator[Platform]:
    daemon = dockerhost.start_engine(tmp_path_factory.mktemp("dockerd"))
    dockerhost.make_base_image()
    # As Heroku builds it: heroku.yml's Dockerfile, its folder as the whole build context.
    dockerfile = yaml.safe_load((REPO / "heroku.yml").read_text())["build"]["docker"]["web"]
    figures = {"image build s": round(dockerhost.build(IMAGE, (REPO / dockerfile).parent), 1)}
    dockerhost.build_postgres()
    dockerhost.build(dockerhost.S3_IMAGE, REPO / "tests" / "images" / "s3")
    database, objectstore = f"{PREFIX}-db", f"{PREFIX}-s3"
    remove(database, objectstore)
    docker("run", "-d", "--name", database, "--env=POSTGRES_DB=mlflow",
           "--env=POSTGRES_USER=mlflow", f"--env=POSTGRES_PASSWORD={DB_PASSWORD}",
           dockerhost.POSTGRES_IMAGE)  # fmt: skip
    docker("run", "-d", "--name", objectstore,
           f"--env=MINIO_ROOT_USER={S3_KEYS['AWS_ACCESS_KEY_ID']}",
           f"--env=MINIO_ROOT_PASSWORD={S3_KEYS['AWS_SECRET_ACCESS_KEY']}",
           dockerhost.S3_IMAGE)  # fmt: skip
    endpoint = f"http://{ip(objectstore)}:9000"
    deadline = time.monotonic() + 60
    while True:
        try:
            boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                         aws_access_key_id=S3_KEYS["AWS_ACCESS_KEY_ID"],
                         aws_secret_access_key=S3_KEYS["AWS_SECRET_ACCESS_KEY"]
                         ).create_bucket(Bucket=BUCKET)  # fmt: skip
            break
        except Exception:
            assert time.monotonic() < deadline, logs(objectstore)
            time.sleep(1)
    users = HtpasswdFile(default_scheme="bcrypt")
    users.set_password("alice", PASSWORD)
    env = {
        # Heroku's form, which SQLAlchemy does not take as it is.
        "DATABASE_URL": f"postgres://mlflow:{DB_PASSWORD}@{ip(database)}:5432/mlflow",
        "MLFLOW_HTPASSWD": users.to_string().decode(),
        "MLFLOW_ARTIFACTS_DESTINATION": f"s3://{BUCKET}/artifacts",
        "MLFLOW_S3_ENDPOINT_URL": endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
        **S3_KEYS,
    }
    found = Platform(database, objectstore, env, users.to_string().decode(), {})
    try:
        yield found
    finally:
        figures["boots"] = found.boots
        record(figures)
        remove(database, objectstore)
        if daemon is not None:
            daemon.terminate()


def record(figures: dict) -> None:
    dockerhost.record(figures, "platform-figures.json")


def psql(platform: Platform, statement: str) -> str:
    return docker("exec", f"--env=PGPASSWORD={DB_PASSWORD}", platform.database, "psql",
                  "-h", "127.0.0.1", "-U", "mlflow", "-d", "mlflow", "-tA", "-c", statement
                  ).stdout.strip()  # fmt: skip


def process_tree(container: str) -> set[int]:
    """The container's processes, as this machine's /proc numbers them."""
    tree = {int(docker("inspect", "-f", "{{.State.Pid}}", container).stdout)}
    everyone = {pid: procfs.parent(pid) for pid in procfs.pids()}
    grown = True
    while grown:
        more = {pid for pid, parent in everyone.items() if parent in tree} - tree
        tree |= more
        grown = bool(more)
    return tree


def container_pss_mb(container: str) -> tuple[float, dict[str, float]]:
    """PSS of every process of the container, read from this machine's /proc: the total, and
    by program (what takes the memory)."""
    by_program: dict[str, float] = {}
    for process in process_tree(container):
        argv = procfs.command_line(process).split(b"\0")
        program = " ".join(a.decode() for a in argv[:4] if a)[:60]
        for line in Path(f"/proc/{process}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                by_program[program] = by_program.get(program, 0) + int(line.split()[1]) / 1024
    rounded = {k: round(v, 1) for k, v in sorted(by_program.items(), key=lambda kv: -kv[1])}
    return round(sum(by_program.values()), 1), rounded


@pytest.fixture(scope="module")
def released(platform: Platform) -> str:
    """The release phase, in its own container, before any web container starts."""
    deadline = time.monotonic() + 60
    while docker("exec", platform.database, "pg_isready", "-h", "127.0.0.1", "-U", "mlflow",
                 check=False).returncode != 0:  # fmt: skip
        assert time.monotonic() < deadline, logs(platform.database)
        time.sleep(1)
    done = platform.release(f"{PREFIX}-release")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "release done" in output
    assert DB_PASSWORD not in output
    remove(f"{PREFIX}-release")
    return output


@pytest.fixture(scope="module")
def dynos(platform: Platform, released: str) -> Iterator[list[Dyno]]:
    assert psql(platform, "SELECT count(*) FROM alembic_version") == "1"
    names = [f"{PREFIX}-web1", f"{PREFIX}-web2"]
    try:
        yield [platform.start_dyno(names[0], {"PORT": str(free_port()), "WEB_CONCURRENCY": "1"}),
               platform.start_dyno(names[1], {"PORT": str(free_port()), "WEB_CONCURRENCY": "2"})]
    finally:
        remove(*names)


def test_the_client_flow_through_each_dyno_and_memory(dynos: list[Dyno], tmp_path: Path):
    memory = {}
    for number, dyno in enumerate(dynos, start=1):
        workdir = tmp_path / dyno.container
        workdir.mkdir()
        mlflow_flow.exercise(dyno, workdir, f"platform-dyno{number}")
        total, by_program = container_pss_mb(dyno.container)
        memory[f"pss_mb_{number}_worker{'s' if number > 1 else ''}"] = total
        memory[f"by_program_{number}"] = by_program
    record({"memory": memory})
    # What keeps a 512 MB dyno safe: no `mlflow server` parent (about 200 MB that only waits),
    # one worker within the 300 MB, each further worker about 250 MB at most.
    for by_program in (memory["by_program_1"], memory["by_program_2"]):
        assert not any("mlflow server" in program for program in by_program), by_program
    assert memory["pss_mb_1_worker"] < 300, memory
    assert memory["pss_mb_2_workers"] - memory["pss_mb_1_worker"] < 260, memory
    memory["image_mb"] = round(int(docker("image", "inspect", "-f", "{{.Size}}", IMAGE).stdout)
                               / 1e6)  # fmt: skip
    record({"memory": memory})


def test_a_run_logged_through_one_dyno_is_read_through_the_other(dynos: list[Dyno]):
    first, second = dynos
    with mlflow_client_env(first):
        client = MlflowClient(tracking_uri=first.url)
        experiment = client.create_experiment("across-dynos")
        run = client.create_run(experiment)
        client.log_metric(run.info.run_id, "loss", 0.25)
    with mlflow_client_env(second):
        seen = MlflowClient(tracking_uri=second.url).get_run(run.info.run_id)
    assert seen.data.metrics == {"loss": 0.25}


def test_the_router_is_believed_for_the_last_hop_only(dynos: list[Dyno]):
    """A client's own X-Forwarded-For entries come before the router's: only the router's
    (the last) names the client that the per-client bcrypt limit counts."""
    dyno = dynos[0]
    wrong = "YWxpY2U6d3Jvbmc="  # alice:wrong
    assert status(dyno.port, "/api/2.0/mlflow/experiments/search", auth=wrong,
                  headers={"X-Forwarded-For": "198.51.100.7, 203.0.113.9"}) == 401  # fmt: skip
    checks = re.findall(r"client=(\S+) user=\"alice\" status=401", logs(dyno.container))
    assert checks and checks[-1] == "203.0.113.9", checks


def test_plain_http_through_the_router_goes_to_https(dynos: list[Dyno]):
    port = dynos[0].port
    assert status(port, "/", headers={"X-Forwarded-Proto": "http"}) == 308
    assert status(port, "/health", headers={"X-Forwarded-Proto": "http"}) == 200
    assert status(port, "/", headers={"X-Forwarded-Proto": "https"}) == 401


def test_a_crashed_mlflow_comes_back(dynos: list[Dyno]):
    dyno = dynos[1]
    pid1 = int(docker("inspect", "-f", "{{.State.Pid}}", dyno.container).stdout)
    uvicorn = [p for p in process_tree(dyno.container)
               if procfs.parent(p) == pid1 and b"uvicorn" in procfs.command_line(p)]  # fmt: skip
    assert len(uvicorn) == 1
    os.kill(uvicorn[0], signal.SIGKILL)
    deadline = time.monotonic() + 5
    while status(dyno.port) == 200:
        assert time.monotonic() < deadline, "MLflow did not go away"
        time.sleep(0.05)
    assert status(dyno.port) == 503
    deadline = time.monotonic() + 120
    while status(dyno.port) != 200:
        assert time.monotonic() < deadline, logs(dyno.container)[-3000:]
        time.sleep(0.2)
    assert re.search(r"MLflow exited with code -?\d+; restarting it in 1 s", logs(dyno.container))


def test_stop_is_quick_and_clean_and_keeps_acknowledged_metrics(platform: Platform,
                                                                dynos: list[Dyno]):  # fmt: skip
    first, second = dynos
    with mlflow_client_env(first):
        client = MlflowClient(tracking_uri=first.url)
        run = client.create_run(client.create_experiment("stopped-while-logging"))
    acknowledged: list[int] = []

    def keep_logging() -> None:
        with mlflow_client_env(first, password=PASSWORD):
            writer = MlflowClient(tracking_uri=first.url)
            for step in range(100000):
                try:
                    writer.log_metric(run.info.run_id, "step", step, step=step)
                except Exception:
                    return
                acknowledged.append(step)

    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    try:
        thread = threading.Thread(target=keep_logging)
        thread.start()
        time.sleep(2)
        started = time.monotonic()
        docker("stop", "--time", "30", first.container)
        stop_seconds = time.monotonic() - started
        thread.join(timeout=60)
    finally:
        os.environ.pop("MLFLOW_HTTP_REQUEST_MAX_RETRIES")
    exit_code = docker("inspect", "-f", "{{.State.ExitCode}}", first.container).stdout.strip()
    record({"docker stop s": round(stop_seconds, 2)})
    assert exit_code == "0", logs(first.container)[-2000:]
    assert stop_seconds < 10, stop_seconds
    assert acknowledged, "nothing was logged before the stop"
    with mlflow_client_env(second):
        stored = MlflowClient(tracking_uri=second.url).get_metric_history(run.info.run_id, "step")
    assert {m.step for m in stored} >= set(acknowledged)


def test_a_release_against_a_newer_schema_exits_0(platform: Platform, dynos: list[Dyno]):
    """A rollback: the release phase of an older image meets a schema a newer one migrated.
    (A newer image is emulated by a revision this MLflow does not know.)"""
    current = psql(platform, "SELECT version_num FROM alembic_version")
    psql(platform, "UPDATE alembic_version SET version_num = 'f0f0f0f0f0f0'")
    try:
        done = platform.release(f"{PREFIX}-rollback")
    finally:
        psql(platform, f"UPDATE alembic_version SET version_num = '{current}'")  # noqa: S608
        remove(f"{PREFIX}-rollback")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "f0f0f0f0f0f0, which this MLflow does not know" in output
    assert "left the schema as it is" in output


def test_app_runner_environment(platform: Platform, released: str, tmp_path: Path):
    """App Runner: PORT=8080, the secrets as plain variables (RuntimeEnvironmentSecrets), no
    WEB_CONCURRENCY; its HTTP health check is GET /health."""
    name = f"{PREFIX}-apprunner"
    env = {"PORT": "8080",
           "DATABASE_URL": platform.env["DATABASE_URL"].replace("postgres://", "postgresql://")}
    try:
        dyno = platform.start_dyno(name, env)
        assert status(dyno.port, "/health") == 200
        mlflow_flow.exercise(dyno, tmp_path, "platform-apprunner")
        assert "MLflow starting with 2 worker(s)" in logs(name)  # 1 GB limit: what fits
    finally:
        remove(name)
