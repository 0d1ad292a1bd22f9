"""The Elastic Beanstalk bundle deployed on an emulated Amazon Linux 2023 Docker host.

Offline there is no Elastic Beanstalk, so the test plays its deployment steps with real parts:
the bundle from `configgen eb bundle`, unzipped to /var/app/staging of a host container that
runs nginx with a replica of EB's nginx.conf (tests/images/eb-host); `.platform/nginx` copied
over /etc/nginx and checked with `nginx -t`; `upstream docker` pointed at the MLflow container,
built from the bundle's own Dockerfile and started with the bundle's environment properties;
the predeploy hook run as root, reading the users through a stand-in get-config; then nginx.
Metadata go to MariaDB and artifacts to an S3 endpoint (the compose tests' stand-ins), so a
second MLflow container sees what the first one stored. Clients go through a stand-in for the
load balancer's HTTPS and HTTP listeners (tests/images/eb-host/alb.conf), with the Host header
of the environment's CNAME. The bundle is made by an ordinary user (tests/unprivileged.py).
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import subprocess
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import boto3
import pytest
import yaml
from botocore.exceptions import ClientError
from mlflow import MlflowClient

from tests import crafted, dockerhost, mlflow_flow, unprivileged
from tests.dockerhost import docker
from tests.localstack import RunningStack, environ, free_port, mlflow_client_env
from tests.support import PASSWORD, REPO, cache_seconds, verifier_checks, wait_for_new

pytestmark = pytest.mark.slow

HOST_IMAGE = "mlflow-stack-test/eb-host:al2023"
APP_IMAGE = "mlflow-stack-test/eb-app:3.17.2"
PREFIX = "mlflow-eb-e2e"
CNAME = "mlflow-e2e.eu-west-1.elasticbeanstalk.com"
CERTIFICATE = "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789"
BUCKET = "mlflow-eb"
DB_PASSWORD = "db-password-for-the-eb-test"
S3_KEYS = {"AWS_ACCESS_KEY_ID": "ebtestaccesskey", "AWS_SECRET_ACCESS_KEY": "ebtestsecretkey1"}
ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:{}-AbCd12"
HOOK = ".platform/hooks/predeploy/10_mlflow_users.sh"
CONFIG_HOOK = ".platform/confighooks/predeploy/10_mlflow_users.sh"


def ip(container: str) -> str:
    return docker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", container).stdout.strip()


def remove(*containers: str) -> None:
    docker("rm", "-f", "-v", *containers, check=False)


@dataclass
class EBHost(RunningStack):
    """The emulated instance: requests go to its port 80 with the CNAME as Host."""

    host_container: ClassVar[str] = f"{PREFIX}-host"
    apps: list[str] = field(default_factory=list)  # MLflow containers: instance 1, 2
    app_env: dict[str, str] = field(default_factory=dict)  # what EB passes them
    direct_port: int = 0  # the instance's port 80, as the load balancer reaches it
    # `port` is the load balancer's HTTPS listener (stand-in), this its HTTP one
    plain_port: int = 0

    @property
    def url(self) -> str:
        return f"http://{CNAME}"

    def request(self, path, auth=None, host=CNAME, method="GET"):
        return super().request(path, auth, host, method)

    def configgen(self, *args: str, stdin: str | None = None):
        """As the user who made the bundle."""
        return unprivileged.run("configgen", *args, cwd=self.project, stdin=stdin, env=self.env)

    def run(self, *command: str, check: bool = True):
        """A command on the host, as root in the staging folder (as EB runs hooks)."""
        return docker("exec", "-w", "/var/app/staging", self.host_container, *command,
                      check=check)  # fmt: skip

    def access_log(self) -> str:
        # The client reaches nginx as a forward proxy (see `through_nginx`), so request lines
        # carry the scheme and host: drop them to compare paths.
        log = self.run("cat", "/var/log/nginx/access.log").stdout
        return log.replace(f"http://{CNAME}", "")

    def set_users(self, text: str) -> None:
        """The MLFLOW_HTPASSWD secret as EB's get-config returns it."""
        self.run("mkdir", "-p", "/opt/elasticbeanstalk/test-env")
        docker("exec", "-i", self.host_container, "sh", "-c",
               "cat > /opt/elasticbeanstalk/test-env/MLFLOW_HTPASSWD", input=text)  # fmt: skip

    def nginx_workers(self) -> set[str]:
        """The living children of EB's nginx master (its workers), read from /proc."""
        script = (
            "master=$(cat /run/nginx.pid); for stat in /proc/[0-9]*/stat; do "
            'read -r line < "$stat" 2>/dev/null || continue; set -- $line; '
            '[ "$4" = "$master" ] && [ "$3" != Z ] && echo "$1"; done; true'
        )
        return set(self.run("sh", "-c", script).stdout.split())

    def checks_of(self, user: str) -> list[str]:
        """The verifier's answers to `user`'s password checks so far (EB's nginx logs them)."""
        lines = verifier_checks(
            lambda: self.run("cat", "/var/log/nginx/mlflow-auth.log").stdout,
            lambda login: self.request(SEARCH, login),
        )
        return [line.split()[-2] for line in lines if f'user="{user}" ' in line]

    def point_upstream_at(self, app: str) -> None:
        """What EB writes for the container's first port."""
        conf = f"upstream docker {{\n    server {ip(app)}:5000;\n    keepalive 256;\n}}\n"
        docker("exec", "-i", self.host_container, "sh", "-c",
               "cat > /etc/nginx/conf.d/elasticbeanstalk-nginx-docker-upstream.conf",
               input=conf)  # fmt: skip


@contextmanager
def through_nginx(host: EBHost) -> Iterator[None]:
    """Point the MLflow client at the CNAME, through the host's nginx: as an HTTP proxy, nginx
    receives absolute request URIs and takes the CNAME as the Host, as behind the load
    balancer; no DNS entry needed."""
    proxy = environ(HTTP_PROXY=f"http://127.0.0.1:{host.port}", NO_PROXY=None, no_proxy=None)
    with proxy, mlflow_client_env(host):
        yield


def environment_properties(staging: Path) -> dict[str, str]:
    settings = yaml.safe_load((staging / ".ebextensions" / "mlflow.config").read_text())
    return settings["option_settings"]["aws:elasticbeanstalk:application:environment"]


def start_app(name: str, env: dict[str, str]) -> str:
    """The MLflow container as EB runs it: the bundle's image, the environment as variables."""
    remove(name)
    args = [f"--env={k}={v}" for k, v in env.items()]
    docker("run", "-d", "--name", name, *args, APP_IMAGE)
    deadline = time.monotonic() + 180
    probe = "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/health')"
    while docker("exec", name, "python", "-c", probe, check=False).returncode != 0:
        logs = docker("logs", "--tail", "20", name, check=False)
        assert time.monotonic() < deadline, logs.stdout + logs.stderr
        time.sleep(1)
    return name


@pytest.fixture(scope="module")
def deployed(tmp_path_factory, user_bin: Path) -> Iterator[EBHost]:
    daemon = dockerhost.start_engine(tmp_path_factory.mktemp("dockerd"))
    dockerhost.make_base_image()
    # The stack/mlflow/certs/ the compose build sees, so the bundle's image shares its layers.
    dockerhost.build("mlflow-stack/mlflow:3.17.2", REPO / "stack" / "mlflow")
    for tag, folder in ((dockerhost.MARIADB_IMAGE, "mariadb"), (dockerhost.S3_IMAGE, "s3"),
                        (HOST_IMAGE, "eb-host")):  # fmt: skip
        dockerhost.build(tag, REPO / "tests" / "images" / folder)
    database, objectstore = f"{PREFIX}-db", f"{PREFIX}-s3"
    apps = [f"{PREFIX}-app1", f"{PREFIX}-app2"]
    remove(database, objectstore, *apps, EBHost.host_container)
    docker("run", "-d", "--name", database, "--env=MYSQL_DATABASE=mlflow",
           "--env=MYSQL_USER=mlflow", f"--env=MYSQL_PASSWORD={DB_PASSWORD}",
           "--env=MYSQL_ROOT_PASSWORD=root-password-eb", dockerhost.MARIADB_IMAGE)  # fmt: skip
    docker("run", "-d", "--name", objectstore,
           f"--env=MINIO_ROOT_USER={S3_KEYS['AWS_ACCESS_KEY_ID']}",
           f"--env=MINIO_ROOT_PASSWORD={S3_KEYS['AWS_SECRET_ACCESS_KEY']}",
           dockerhost.S3_IMAGE)  # fmt: skip
    s3_endpoint = f"http://{ip(objectstore)}:9000"

    project = unprivileged.folder("eb-project-")
    (project / "stack").mkdir()
    (project / "stack" / "stack.yaml").write_text(
        f"name: {PREFIX}\n"
        "hosts: [mlflow.example.com]\n"
        "auth: {bcrypt_cost: 4}\n"
        "proxy: {trusted_proxies: [172.16.0.0/12, 127.0.0.1]}\n"
        "mlflow:\n"
        f"  backend_store: mysql+pymysql://mlflow@{ip(database)}:3306/mlflow\n"
        f"  artifact_destination: s3://{BUCKET}/artifacts\n"
        f"object_store: {{endpoint: '{s3_endpoint}'}}\n"
        "elastic_beanstalk:\n"
        f"  cname: {CNAME}\n"
        f"  https_certificate: {CERTIFICATE}\n"
        "  max_instances: 2\n"
        "  secrets:\n"
        f"    htpasswd: '{ARN.format('users')}'\n"
        f"    database_password: '{ARN.format('db')}'\n"
    )  # fmt: skip
    # The user who makes the bundle is an ordinary one, with configgen installed from its
    # wheel: the bundle's build context comes from the package. Behind a TLS-intercepting
    # proxy, that user puts its CA in stack/mlflow/certs/, and the bundle carries it.
    certs = project / "stack" / "mlflow" / "certs"
    certs.mkdir(parents=True)
    shutil.copy(dockerhost.ca_bundle(), certs / "build-host-ca.crt")
    for folder in (project / "stack", project / "stack" / "mlflow", certs):
        os.chown(folder, unprivileged.UID, unprivileged.GID)
    env = {"PATH": f"{user_bin}:/usr/bin:/bin"}
    for args, stdin in ((["init"], None),
                        (["htpasswd", "user", "add", "alice", "--password-stdin"], PASSWORD),
                        (["eb", "bundle"], None)):  # fmt: skip
        done = unprivileged.run("configgen", *args, cwd=project, stdin=stdin, env=env)
        assert done.returncode == 0, done.stderr
    bundle = project / "dist" / f"{PREFIX}-eb.zip"

    # EB unzips the bundle into the staging folder, modes included.
    staging = project / "staging"
    subprocess.run(["unzip", "-q", str(bundle), "-d", str(staging)], check=True)
    docker("build", "-t", APP_IMAGE, str(staging))

    host = EBHost(project, project, free_port(), "alice", PASSWORD, env, apps=apps,
                  direct_port=free_port(), plain_port=free_port())  # fmt: skip
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                 aws_access_key_id=S3_KEYS["AWS_ACCESS_KEY_ID"],
                 aws_secret_access_key=S3_KEYS["AWS_SECRET_ACCESS_KEY"]
                 ).create_bucket(Bucket=BUCKET)  # fmt: skip
    # The instance profile's part: S3 credentials (AWS would hand out temporary ones).
    host.app_env = {**environment_properties(staging), "MLFLOW_DB_PASSWORD": DB_PASSWORD,
                    **S3_KEYS}  # fmt: skip
    start_app(apps[0], host.app_env)

    docker("run", "-d", "--name", host.host_container, "--tmpfs", "/run",
           "-p", f"127.0.0.1:{host.port}:81", "-p", f"127.0.0.1:{host.plain_port}:82",
           "-p", f"127.0.0.1:{host.direct_port}:80", HOST_IMAGE)  # fmt: skip
    docker("cp", f"{staging}/.", f"{host.host_container}:/var/app/staging/")
    host.run("cp", "-r", "/var/app/staging/.platform/nginx/.", "/etc/nginx/")
    host.point_upstream_at(apps[0])
    try:
        yield host
    finally:
        remove(host.host_container, *apps, database, objectstore)
        unprivileged.remove(project)
        if daemon is not None:
            daemon.terminate()
            daemon.wait(timeout=60)


@pytest.fixture(scope="module")
def serving(deployed: EBHost) -> EBHost:
    """The deployment's remaining steps: nginx -t, the predeploy hook, nginx started."""
    host = deployed
    test = host.run("nginx", "-t", check=False)
    assert test.returncode == 0, test.stderr
    # A deployment whose secret is missing fails in the hook, before nginx serves anyone.
    missing = host.run(HOOK, check=False)
    assert missing.returncode == 1
    assert "mlflow users: MLFLOW_HTPASSWD is missing or empty" in missing.stderr
    host.set_users((host.project / "secrets" / "nginx" / "htpasswd").read_text())
    done = host.run(HOOK)
    assert done.stdout == "mlflow users: wrote 1 users to /etc/nginx/secrets/htpasswd\n"
    listing = host.run("stat", "-c", "%a %U:%G %n", "/etc/nginx/secrets",
                       "/etc/nginx/secrets/htpasswd").stdout  # fmt: skip
    assert listing.splitlines() == [
        "750 root:nginx /etc/nginx/secrets",
        "640 root:nginx /etc/nginx/secrets/htpasswd",
    ]
    host.run("nginx")
    host.run("nginx", "-c", "/etc/alb/nginx.conf")  # the load balancer's listeners
    deadline = time.monotonic() + 30
    while True:
        try:
            if host.request("/health")[0] == 200:
                return host
        except OSError:
            pass
        assert time.monotonic() < deadline, host.run("cat", "/var/log/nginx/error.log").stdout
        time.sleep(0.5)


SEARCH = "/api/2.0/mlflow/experiments/search?max_results=5"


def test_health_is_open_and_everything_else_needs_a_user(serving: EBHost):
    assert serving.request("/health")[0] == 200
    for path in (SEARCH, "/", "/ajax-api/2.0/mlflow/experiments/search?max_results=1"):
        assert serving.request(path)[0] == 401, path
        assert serving.request(path, ("alice", "wrong password"))[0] == 401, path
    assert serving.request(SEARCH, serving.credentials)[0] == 200
    # MLflow's Host check: the CNAME and the stack's names pass, others do not.
    assert serving.request(SEARCH, serving.credentials, host="mlflow.example.com")[0] == 200
    assert serving.request(SEARCH, serving.credentials, host="evil.example.net")[0] == 403
    # The password checks ran in EB's nginx, through the verifier server and its log.
    auth_log = serving.run("cat", "/var/log/nginx/mlflow-auth.log").stdout
    assert re.search(r'user="alice" status=200', auth_log)
    assert re.search(r'user="alice" status=401', auth_log)


def test_the_mlflow_client_through_the_eb_host(serving: EBHost, tmp_path: Path):
    with through_nginx(serving):
        mlflow_flow.exercise(serving, tmp_path, "eb")


def plain(port: int, path: str, headers: dict[str, str] | None = None):
    """One request to a port of the host container, with the CNAME as Host."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers={"Host": CNAME, **(headers or {})})
        response = conn.getresponse()
        response.read()
        return response.status, dict(response.getheaders())
    finally:
        conn.close()


def test_plain_http_answers_health_and_redirects_the_rest(serving: EBHost):
    # The load balancer's HTTP listener: /health, and otherwise the way to HTTPS, before any
    # password is looked at.
    assert plain(serving.plain_port, "/health")[0] == 200
    status, headers = plain(serving.plain_port, SEARCH, {"Authorization": "Basic eDp5"})
    assert (status, headers["Location"]) == (308, f"https://{CNAME}{SEARCH}")
    assert "Strict-Transport-Security" not in headers
    # Its HTTPS listener: HSTS on every answer, the 401 too.
    status, headers = plain(serving.port, SEARCH)
    assert (status, headers["Strict-Transport-Security"]) == (401, "max-age=31536000")
    status, headers, _ = serving.request(SEARCH, serving.credentials)
    assert (status, headers["Strict-Transport-Security"]) == (200, "max-age=31536000")
    # The health check itself, straight to the instance.
    assert plain(serving.direct_port, "/health")[0] == 200


def test_crafted_requests_never_reach_mlflow(serving: EBHost):
    answers = {}

    def send_everything() -> None:
        # Straight to EB's nginx, as the load balancer forwards them (HTTPS, then HTTP).
        for proto in ("https", "http"):
            answers[proto] = crafted.send_table(
                "127.0.0.1", serving.direct_port, CNAME,
                extra_headers=f"X-Forwarded-Proto: {proto}\r\n",
            )  # fmt: skip

    def mlflow_log() -> str:
        logs = docker("logs", serving.apps[0])
        return logs.stdout + logs.stderr

    seen = crafted.assert_only_health_reached_mlflow(
        mlflow_log, send_everything, lambda path: serving.request(path, serving.credentials)[0]
    )
    assert seen, "the open requests did reach MLflow"
    assert answers["http"][f"GET {crafted.SEARCH}"] == [308]
    dockerhost.record({"crafted requests, eb": answers})


def test_a_second_instance_sees_the_same_runs_and_artifacts(serving: EBHost, tmp_path: Path):
    with through_nginx(serving):
        client = MlflowClient(tracking_uri=serving.url)
        experiment = client.get_experiment_by_name("eb")
        assert experiment is not None, "test_the_mlflow_client_through_the_eb_host runs first"
        (run,) = client.search_runs([experiment.experiment_id])
    # Scale out: a new instance's container on the same RDS and S3, behind the same nginx.
    start_app(serving.apps[1], serving.app_env)
    serving.point_upstream_at(serving.apps[1])
    workers = serving.nginx_workers()
    serving.run("nginx", "-s", "reload")
    wait_for_new(serving.nginx_workers, workers, "EB's nginx")  # only the new upstream now
    docker("stop", serving.apps[0])
    with through_nginx(serving):
        client = MlflowClient(tracking_uri=serving.url)
        assert client.get_run(run.info.run_id).data.params["lr"] == "0.01"
        path = client.download_artifacts(run.info.run_id, "model/MLmodel", str(tmp_path))
        assert Path(path).read_text() == "flavors: {}\n"


def test_a_configuration_deployment_changes_the_users(serving: EBHost):
    users = serving.project / "secrets" / "nginx" / "htpasswd"
    done = serving.configgen("htpasswd", "user", "add", "bob", "--password-stdin",
                             stdin="bob's password 123")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert serving.configgen("htpasswd", "user", "remove", "alice").returncode == 0
    # alice, still in the instance's users file, logs in twice: the second time from the cache.
    checked = len(serving.checks_of("alice"))
    cached_at = time.monotonic()
    assert serving.request(SEARCH, serving.credentials)[0] == 200
    assert serving.request(SEARCH, serving.credentials)[0] == 200
    assert serving.checks_of("alice")[checked:] in ([], ["status=200"])  # at most one check
    checked = len(serving.checks_of("alice"))
    # The changed secret, and the hook as a configuration deployment runs it, nginx running:
    # it reloads nginx itself (systemctl, as on the instance), which returns before the new
    # workers run; from when the old ones are gone, only the new users apply.
    serving.set_users(users.read_text())
    workers = serving.nginx_workers()
    done = serving.run(CONFIG_HOOK)
    assert done.stdout == "mlflow users: wrote 1 users to /etc/nginx/secrets/htpasswd\n"
    assert done.stderr == ""  # no "nginx did not reload"
    wait_for_new(serving.nginx_workers, workers, "EB's nginx")
    assert serving.request(SEARCH, ("bob", "bob's password 123"))[0] == 200
    assert serving.request(SEARCH, serving.credentials)[0] == 401
    # At once: within her cached success's lifetime (the bundle's configuration says how
    # long), so the reload's new generation ended it, not its expiry; checked again, refused.
    conf = serving.project / "staging" / ".platform" / "nginx" / "conf.d" / "elasticbeanstalk"
    lifetime = cache_seconds((conf / "mlflow-server.conf").read_text())
    assert time.monotonic() - cached_at < lifetime, "alice's success may have expired: no proof"
    assert serving.checks_of("alice")[checked:] == ["status=401"]


def test_the_object_store_takes_only_the_instances_key(serving: EBHost):
    """The stand-in checks the key as S3 does (tests/images/s3/server.js): the instances got
    their artifacts in with theirs, and a wrong one, or none, is refused."""
    endpoint = f"http://{ip(f'{PREFIX}-s3')}:9000"

    def s3(key: str, secret: str):
        return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                            aws_access_key_id=key, aws_secret_access_key=secret)  # fmt: skip

    right = S3_KEYS["AWS_ACCESS_KEY_ID"], S3_KEYS["AWS_SECRET_ACCESS_KEY"]
    listing = s3(*right).list_objects_v2(Bucket=BUCKET)
    assert any(o["Key"].endswith("/MLmodel") for o in listing["Contents"]), listing
    for wrong, code in (((right[0], "a wrong secret key"), "SignatureDoesNotMatch"),
                        (("AKIAWRONGKEY", right[1]), "InvalidAccessKeyId")):  # fmt: skip
        with pytest.raises(ClientError) as refused:
            s3(*wrong).list_objects_v2(Bucket=BUCKET)
        assert refused.value.response["Error"]["Code"] == code
    unsigned = http.client.HTTPConnection(ip(f"{PREFIX}-s3"), 9000, timeout=30)
    unsigned.request("GET", f"/{BUCKET}?list-type=2")
    answer = unsigned.getresponse()
    assert (answer.status, b"<Code>AccessDenied</Code>" in answer.read()) == (403, True)
    unsigned.close()


def test_bundle_passes_eb_check_and_holds_no_secret(deployed: EBHost):
    bundle = deployed.project / "dist" / f"{PREFIX}-eb.zip"
    done = deployed.configgen("eb", "check", str(bundle))
    assert done.returncode == 0, done.stdout
    assert "no secret of stack/stack.yaml inside" in done.stdout
    with zipfile.ZipFile(bundle) as archive:
        everything = b"".join(archive.read(name) for name in archive.namelist())
    assert DB_PASSWORD.encode() not in everything
    figures = {"eb bundle bytes": bundle.stat().st_size, "entries": len(archive.namelist())}
    dockerhost.record({"eb bundle": figures})
