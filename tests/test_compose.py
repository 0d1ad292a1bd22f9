"""compose/production.yml under a real Docker engine: the images built here, the stack brought
up by compose v2 and by Debian's docker-compose 1.29, the real MLflow client through nginx, and
the failures a production host sees (a crashed MLflow, a late database, a restart).

MySQL and the object store are replaced, through the stack file, by stand-ins built from
Debian packages (no registry is reachable): MariaDB behind the official image's MYSQL_*
variables, and s3rver behind MinIO's interface. The tests run in order and share one stack.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests import crafted, dockerhost, mlflow_flow, unprivileged
from tests.dockerhost import COMPOSE_V1, COMPOSE_V2, docker
from tests.localstack import RunningStack, free_port, mlflow_client_env
from tests.support import (
    PASSWORD,
    REPO,
    cache_seconds,
    clean_env,
    verifier_checks,
    wait_for_new,
)

pytestmark = pytest.mark.slow

PROJECT = "mlflow-e2e"
SEARCH = "/api/2.0/mlflow/experiments/search?max_results=5"


@dataclass
class ComposeStack(RunningStack):
    """The stack of an ordinary user (tests/unprivileged.py): configgen from its own
    installation, compose with that user's access to the Docker engine."""

    user_bin: Path = Path()
    # Compose v2, as the user's Docker CLI plugin (a copy: the suite's may be out of its reach)
    compose_v2: Path = Path()
    # The logs and settings of containers a `down` removed (see `keep_what_down_removes`)
    removed: list[str] = field(default_factory=list)

    def as_user(self, *command: str, stdin: str | None = None, timeout: float = 600):
        path = f"{self.user_bin}:/usr/local/bin:/usr/bin:/bin"
        return unprivileged.run(*command, cwd=self.project, stdin=stdin, timeout=timeout,
                                env={"PATH": path})  # fmt: skip

    def configgen(self, *args: str, stdin: str | None = None):
        return self.as_user("configgen", *args, stdin=stdin)

    def compose(self, *args: str, binary: str | None = None, check: bool = True, timeout=600):
        binary = binary or str(self.compose_v2)
        done = self.as_user(binary, "-f", "compose/production.yml", *args, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"{binary} {' '.join(args)}:\n{done.stdout}\n{done.stderr}")
        return done

    def access_log(self) -> str | None:
        return self.compose("logs", "--no-color", "nginx").stdout

    def container(self, service: str) -> str:
        return self.compose("ps", "-q", service).stdout.strip()

    def logs_and_settings(self) -> str:
        """Every container's log and `docker inspect`, the one-shot bucket job's included."""
        containers = self.compose("ps", "-a", "-q").stdout.split()
        assert len(containers) == 6, containers  # five services and the bucket job
        return self.compose("logs", "--no-color").stdout + docker("inspect", *containers).stdout

    def keep_what_down_removes(self) -> None:
        self.removed.append(self.logs_and_settings())

    def wait_healthy(self, timeout: float = 300) -> float:
        started = time.monotonic()
        while True:
            try:
                if (
                    self.request("/health")[0] == 200
                    and self.request(SEARCH, self.credentials)[0] == 200
                ):
                    return time.monotonic() - started
            except OSError:
                pass
            assert time.monotonic() - started < timeout, self.compose("logs", "--tail=30").stdout
            time.sleep(0.5)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, user_bin: Path) -> Iterator[ComposeStack]:
    """README's production quick start, run by an ordinary user in a folder of its own."""
    daemon = dockerhost.start_engine(tmp_path_factory.mktemp("dockerd"))
    project = unprivileged.folder("compose-project-")
    port, http_port = free_port(), free_port()
    certificate = project / "secrets" / "tls" / "certificate.pem"
    running = ComposeStack(project, project, port, "alice", PASSWORD, clean_env(), certificate,
                           http_port, user_bin=user_bin)  # fmt: skip
    running.as_user("mkdir", "stack")
    stack_file = (
        f"name: {PROJECT}\n"
        f"proxy: {{port: {http_port}}}\n"
        f"tls: {{port: {port}}}\n"
        "auth: {bcrypt_cost: 4}\n"
        f"images: {{database: '{dockerhost.MARIADB_IMAGE}',"
        f" object_store: '{dockerhost.S3_IMAGE}'}}\n"
    )
    assert running.as_user("tee", "stack/stack.yaml", stdin=stack_file).returncode == 0
    for args, stdin in (
        (["init"], None),
        (["htpasswd", "user", "add", "alice", "--password-stdin"], PASSWORD),
        (["render"], None),  # a clone has these files; this folder is not one
    ):
        done = running.configgen(*args, stdin=stdin)
        assert done.returncode == 0, done.stderr
    # The images from the build contexts the user's own installation rendered: nothing of
    # this repository's tree goes into them.
    builds = dockerhost.build_all(project)

    # `docker compose` as README has it: compose v2 as the user's Docker CLI plugin.
    plugins = project / ".docker" / "cli-plugins"
    plugins.mkdir(parents=True)
    shutil.copy(COMPOSE_V2, plugins / "docker-compose")
    running.compose_v2 = plugins / "docker-compose"
    running.compose("down", "-v", check=False)  # leftovers of an interrupted run
    started = time.monotonic()
    up = running.as_user("docker", "compose", "-f", "compose/production.yml", "up", "-d")
    assert up.returncode == 0, up.stdout + up.stderr
    healthy = running.wait_healthy()
    dockerhost.record({
        "build seconds": {k: round(v, 1) for k, v in builds.items()},
        "compose v2 up to healthy, cold volumes (s)": round(time.monotonic() - started, 1),
        "nginx answers through to MLflow after up -d returned (s)": round(healthy, 1),
        "image sizes": dockerhost.image_sizes(
            "mlflow-stack/nginx:0.1.0", "mlflow-stack/mlflow:3.17.2", dockerhost.BASE_IMAGE
        ),
    })  # fmt: skip
    try:
        yield running
    finally:
        running.compose("down", "-v", check=False)
        unprivileged.remove(project)
        if daemon is not None:
            daemon.terminate()
            daemon.wait(timeout=60)


def test_the_mlflow_client_through_the_compose_stack(stack: ComposeStack, tmp_path: Path):
    assert stack.request(SEARCH)[0] == 401
    assert stack.request(SEARCH, ("alice", "wrong password"))[0] == 401
    assert stack.request("/health")[0] == 200
    mlflow_flow.exercise(stack, tmp_path, "compose")
    # The artifacts are in the object store's volume, not in the MLflow container.
    listing = docker(
        "exec", stack.container("objectstore"), "find", "/data", "-name", "*model.bin*"
    ).stdout
    assert "model.bin" in listing
    # The password checks ran in the auth-verifier container, never in nginx's workers.
    checks = stack.compose("logs", "--no-color", "auth-verifier").stdout
    assert 'user="alice" status=401' in checks
    assert 'user="alice" status=200' in checks
    assert "limit=" not in stack.access_log()


def test_the_object_store_takes_only_the_stacks_key(stack: ComposeStack):
    """The stand-in checks the key as the real store does (tests/images/s3/server.js): the
    artifacts above got in with the stack's key, and a wrong one, or none, is refused."""
    objectstore = stack.container("objectstore")
    address = docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                     objectstore).stdout.strip()  # fmt: skip
    endpoint = f"http://{address}:9000"
    key, secret = ((stack.project / "secrets" / name).read_text().strip()
                   for name in ("s3_access_key", "s3_secret_key"))  # fmt: skip
    listing = s3_client(endpoint, key, secret).list_objects_v2(Bucket="mlflow")
    assert any(o["Key"].endswith("/model.bin") for o in listing["Contents"]), listing
    for wrong, code in (((key, "a wrong secret key"), "SignatureDoesNotMatch"),
                        (("AKIAWRONGKEY", secret), "InvalidAccessKeyId")):  # fmt: skip
        with pytest.raises(ClientError) as refused:
            s3_client(endpoint, *wrong).list_objects_v2(Bucket="mlflow")
        assert refused.value.response["Error"]["Code"] == code
    unsigned = http.client.HTTPConnection(address, 9000, timeout=30)
    unsigned.request("GET", "/mlflow?list-type=2")
    answer = unsigned.getresponse()
    assert (answer.status, b"<Code>AccessDenied</Code>" in answer.read()) == (403, True)
    unsigned.close()


def s3_client(endpoint: str, key: str, secret: str):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=secret)  # fmt: skip


def test_only_nginx_publishes_a_port(stack: ComposeStack):
    for service in ("nginx", "auth-verifier", "mlflow", "database", "objectstore"):
        ports = json.loads(
            docker(
                "inspect", "-f", "{{json .HostConfig.PortBindings}}", stack.container(service)
            ).stdout
        )
        assert bool(ports) == (service == "nginx"), (service, ports)
    # Plain HTTP answers /health and sends everything else to HTTPS.
    conn = http.client.HTTPConnection("127.0.0.1", stack.http_port, timeout=10)
    conn.request("GET", "/health")
    assert conn.getresponse().status == 200
    conn.close()
    conn = http.client.HTTPConnection("127.0.0.1", stack.http_port, timeout=10)
    conn.request("GET", SEARCH)
    response = conn.getresponse()
    assert response.status == 308
    # The image holds this stack's own rendered configuration: the redirect names its port.
    assert response.getheader("Location") == f"https://127.0.0.1:{stack.port}{SEARCH}"
    conn.close()


def test_crafted_requests_never_reach_mlflow(stack: ComposeStack):
    mlflow = stack.container("mlflow")
    answers = {}

    def mlflow_log() -> str:
        logs = docker("logs", mlflow)
        return logs.stdout + logs.stderr

    seen = crafted.assert_only_health_reached_mlflow(
        mlflow_log,
        lambda: answers.update(crafted.send_to_stack(stack)),
        lambda path: stack.request(path, stack.credentials)[0],
    )
    assert seen, "the open requests did reach MLflow"
    dockerhost.record({"crafted requests, compose": answers})


def identities(container: str) -> list[tuple[str, str, str, str]]:
    """(uid, gid, supplementary groups, command) of each process in a container."""
    top = docker("top", container, "-eo", "pid,uid,gid,supgid,args").stdout.splitlines()[1:]
    return [tuple(line.split(None, 4)[1:]) for line in top]


def test_nginx_workers_are_never_root_nor_in_group_root(stack: ComposeStack):
    def never_root(processes: list[tuple[str, str, str, str]], gid: int) -> bool:
        return bool(processes) and all(
            (uid, group) == ("33", str(gid)) and "0" not in groups.split(",")
            for uid, group, groups, _ in processes
        )

    workers = [p for p in identities(stack.container("nginx")) if "worker process" in p[3]]
    assert never_root(workers, 33), workers  # www-data
    # The verifier, master and workers, as www-data in the group of the user who ran
    # `configgen` (its users folder's).
    verifier = identities(stack.container("auth-verifier"))
    assert len(verifier) >= 2 and never_root(verifier, unprivileged.GID), verifier
    folder = (stack.project / "secrets" / "nginx").stat()
    assert (folder.st_uid, folder.st_gid) == (unprivileged.UID, unprivileged.GID)


def test_the_verifier_refuses_a_users_folder_of_group_root(stack: ComposeStack, tmp_path: Path):
    """As root left it before configgen gave such folders to www-data: a clear refusal."""
    users = tmp_path / "users"
    users.mkdir(mode=0o750)
    os.chown(users, 0, 0)
    done = docker("run", "--rm", "--read-only", "--tmpfs", "/run", "--tmpfs", "/var/lib/nginx",
                  "-v", f"{users}:/etc/nginx/secrets:ro", "mlflow-stack/nginx:0.1.0", "verifier",
                  check=False)  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "belongs to group root" in done.stderr and "configgen init" in done.stderr


def test_mlflow_runs_as_a_non_root_user(stack: ComposeStack):
    top = docker("top", stack.container("mlflow"), "-eo", "pid,uid,args").stdout.splitlines()[1:]
    assert top and all(line.split()[1] == "10001" for line in top), top


def nginx_workers(stack: ComposeStack) -> set[str]:
    top = docker("top", stack.container("nginx"), "-eo", "pid,args").stdout.splitlines()
    return {line.split()[0] for line in top if "worker process" in line}


def test_user_change_with_reload_reaches_the_container(stack: ComposeStack):
    bob = ("bob", PASSWORD)

    def bobs_checks() -> list[str]:
        lines = verifier_checks(lambda: stack.compose("logs", "--no-color", "auth-verifier").stdout,
                                lambda login: stack.request(SEARCH, login))  # fmt: skip
        return [line.split()[-2] for line in lines if 'user="bob" ' in line]

    add = stack.configgen("htpasswd", "user", "add", "bob", "--password-stdin", stdin=PASSWORD)
    assert add.returncode == 0, add.stderr
    cached_at = time.monotonic()
    assert stack.request(SEARCH, bob)[0] == 200
    assert stack.request(SEARCH, bob)[0] == 200
    assert bobs_checks() == ["status=200"]  # checked once: the second came from the cache
    workers = nginx_workers(stack)
    removed = stack.configgen("htpasswd", "user", "remove", "bob", "--reload")
    assert removed.returncode == 0, removed.stderr
    assert f"reloaded the nginx container {PROJECT}-nginx-1" in removed.stdout
    assert stack.request(SEARCH, bob)[0] == 401
    # Within the lifetime of bob's cached success (the image's configuration says how long):
    # the reload ended it, not its expiry. Then the verifier was asked again, and refused.
    lifetime = cache_seconds((REPO / "nginx" / "mlflow-server.conf").read_text())
    assert time.monotonic() - cached_at < lifetime, "bob's success may have expired: no proof"
    assert bobs_checks() == ["status=200", "status=401"]
    assert stack.request(SEARCH, stack.credentials)[0] == 200
    # SIGHUP made nginx start new workers: the reload really happened.
    wait_for_new(lambda: nginx_workers(stack), workers, "nginx")


def test_killed_mlflow_gives_a_quick_502_and_comes_back(stack: ComposeStack):
    pid = int(docker("inspect", "-f", "{{.State.Pid}}", stack.container("mlflow")).stdout)
    os.kill(pid, signal.SIGKILL)  # a crash, not a `docker stop`: the restart policy applies
    crashed = time.monotonic()
    # Until the kernel has torn the container down, MLflow's workers may still answer (or be
    # killed in the middle of an answer, which then arrives cut short); from then on every
    # request must get a quick 502/503, never hang.
    while True:
        started = time.monotonic()
        try:
            status = stack.request(SEARCH, stack.credentials)[0]
        except http.client.IncompleteRead:
            status = 200  # the answer a dying worker had begun
        answered = time.monotonic() - started
        assert answered < 1, f"nginx took {answered:.2f} s to answer (status {status})"
        if status in (502, 503):
            break
        assert status == 200 and time.monotonic() - crashed < 5, status
        time.sleep(0.05)
    stack.wait_healthy(timeout=180)
    dockerhost.record({
        "nginx answer while MLflow is down (s)": round(answered, 3),
        "MLflow back after a crash (s)": round(time.monotonic() - crashed, 1),
    })  # fmt: skip
    restarts = docker("inspect", "-f", "{{.RestartCount}}", stack.container("mlflow")).stdout
    assert int(restarts) >= 1


def test_down_and_up_keep_runs_metrics_and_artifacts(stack: ComposeStack, tmp_path: Path):
    stack.keep_what_down_removes()  # for test_no_secret_in_logs_or_container_settings
    stack.compose("down")  # volumes kept
    started = time.monotonic()
    stack.compose("up", "-d", binary=COMPOSE_V1)  # and Debian's docker-compose 1.29 can run it
    stack.wait_healthy()
    dockerhost.record(
        {
            "docker-compose 1.29 up to healthy, warm volumes (s)": round(
                time.monotonic() - started, 1
            )
        }
    )
    from mlflow import MlflowClient

    with mlflow_client_env(stack):
        client = MlflowClient(tracking_uri=stack.url)
        experiment = client.get_experiment_by_name("compose")
        (run,) = client.search_runs([experiment.experiment_id])
        assert len(client.get_metric_history(run.info.run_id, "loss")) == 1000
        assert run.data.params == {"lr": "0.01", "layers": "3"}
        path = client.download_artifacts(run.info.run_id, "model/model.bin", str(tmp_path))
        assert Path(path).stat().st_size == mlflow_flow.ARTIFACT_MB * 1024 * 1024
        assert client.get_model_version_by_alias("compose-model", "champion").version == "1"


def test_late_database_is_waited_for_without_a_crash_loop(stack: ComposeStack):
    mlflow_id = stack.container("mlflow")

    def waits() -> int:
        logs = docker("logs", mlflow_id)
        return (logs.stdout + logs.stderr).count("waiting for the database at database:3306")

    before = waits()
    stack.compose("stop", "database", binary=COMPOSE_V1)
    stack.compose("restart", "mlflow", binary=COMPOSE_V1)  # starts while the database is away
    # Until its entrypoint has said twice that it waits: it keeps waiting, not giving up.
    deadline = time.monotonic() + 120
    while waits() < before + 2:
        assert time.monotonic() < deadline, docker("logs", "--tail", "20", mlflow_id).stderr
        time.sleep(0.5)
    state = json.loads(docker("inspect", "-f", "{{json .State}}", mlflow_id).stdout)
    assert state["Running"] and not state["Restarting"], state
    assert stack.request(SEARCH, stack.credentials)[0] in (502, 503)
    stack.compose("start", "database", binary=COMPOSE_V1)
    stack.wait_healthy(timeout=180)
    # The same process waited and then served: it never exited.
    assert (
        json.loads(docker("inspect", "-f", "{{json .State}}", mlflow_id).stdout)["Pid"]
        == state["Pid"]
    )


def test_no_secret_in_logs_or_container_settings(stack: ComposeStack):
    """Last, so that it sees what the crash, the outage and the restarts above logged (and the
    containers the restart replaced, kept before their `down`)."""
    secrets = {
        p.name: p.read_text().strip() for p in (stack.project / "secrets").iterdir() if p.is_file()
    }
    assert len(secrets) == 4
    secrets["user password"] = PASSWORD
    secrets["alice's login, as an Authorization header"] = base64.b64encode(
        f"alice:{PASSWORD}".encode()
    ).decode()
    key = (stack.project / "secrets" / "tls" / "key.pem").read_text().splitlines()
    body = [line for line in key if not line.startswith("-----")]
    assert body, key  # PEM: lines of base64 between the markers
    secrets |= {f"TLS private key, line {i}": line for i, line in enumerate(body, 1)}
    everything = [*stack.removed, stack.logs_and_settings()]
    assert len(everything) == 2, "test_down_and_up_keep_runs_metrics_and_artifacts ran first"
    found = {name for name, value in secrets.items() for text in everything if value in text}
    assert found == set(), "in a container's log or settings"
    assert "MLFLOW_DB_PASSWORD_FILE=/run/secrets/mysql_password" in everything[-1]
    # Nor in any process's arguments, which `ps` shows (the entrypoint's `mlflow db upgrade`
    # is over by now: its arguments are in the log above, which holds no secret either).
    for service in ("nginx", "auth-verifier", "mlflow", "database", "objectstore"):
        top = docker("top", stack.container(service), "-eo", "pid,args").stdout
        assert len(top.splitlines()) > 1, (service, top)
        found = {name for name, value in secrets.items() if value in top}
        assert found == set(), f"in the arguments of a {service} process"
