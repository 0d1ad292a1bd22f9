"""`configgen eb bundle` and `configgen eb check`, and the Elastic Beanstalk files they hold:
what the bundle contains, the stacks it refuses, the broken bundles the check catches, and the
users hook run by a real bash. The bundle deployed on an emulated EB host: tests/test_eb_host.py.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
import yaml

from configgen import render, stack, tls
from configgen.errors import UsageError
from configgen.targets.elastic_beanstalk import files as elastic_beanstalk_files
from tests.support import PASSWORD, Configgen

SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:mlflow/users-AbCd12"
DB_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-1234-XyZ987:password"
URI_ARN = "arn:aws:ssm:eu-west-1:123456789012:parameter/mlflow/backend-uri"
CERT_ARN = "arn:aws:acm:eu-west-1:123456789012:certificate/0f1e2d3c-aaaa-bbbb-cccc-123456789abc"
SCALED = f"""\
auth: {{bcrypt_cost: 4}}
hosts: [mlflow.example.com]
proxy: {{trusted_proxies: [172.31.0.0/16], timeout_seconds: 7200}}
mlflow:
  backend_store: mysql+pymysql://mlflow@db.example.internal:3306/mlflow
  artifact_destination: s3://acme-mlflow/artifacts
elastic_beanstalk:
  cname: mlflow-prod.eu-west-1.elasticbeanstalk.com
  min_instances: 2
  max_instances: 6
  instance_types: [m7g.large, m6g.large]
  instance_profile: mlflow-eb-instance
  https_certificate: {CERT_ARN}
  secrets: {{htpasswd: "{SECRET_ARN}", database_password: "{DB_ARN}"}}
"""


def eb_files(text: str = "") -> dict[str, str]:
    project = stack.Project(Path("stack/stack.yaml"), Path("."), stack.parse(text, "stack.yaml"))
    files = render.render(project, elastic_beanstalk_files.outputs(project))
    return {k: v.data.decode() for k, v in files.items()}


def options(text: str = "") -> dict[str, dict]:
    return yaml.safe_load(eb_files(text)[".ebextensions/mlflow.config"])["option_settings"]


def add_user(configgen: Configgen, name: str = "alice") -> None:
    done = configgen("htpasswd", "user", "add", name, "--password-stdin", stdin=PASSWORD)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def scaled(project: Path, configgen: Configgen) -> Path:
    """A project ready for a multi-instance bundle: RDS, S3, secrets by ARN, one user."""
    (project / "stack" / "stack.yaml").write_text(SCALED)
    assert configgen("init").returncode == 0
    add_user(configgen)
    return project


def bundle(configgen: Configgen, project: Path, name: str = "b.zip") -> Path:
    done = configgen("eb", "bundle", "--out", name)
    assert done.returncode == 0, done.stderr
    return project / name


# -- the rendered files ---------------------------------------------------------------------


def test_option_settings_of_the_default_stack():
    settings = options()
    assert settings["aws:elasticbeanstalk:environment"] == {
        "EnvironmentType": "LoadBalanced",
        "LoadBalancerType": "application",
    }
    process = settings["aws:elasticbeanstalk:environment:process:default"]
    assert (process["HealthCheckPath"], process["MatcherHTTPCode"]) == ("/health", "200")
    assert settings["aws:autoscaling:asg"] == {"MinSize": "1", "MaxSize": "1"}
    assert settings["aws:ec2:instances"] == {"InstanceTypes": "t3.medium"}
    assert settings["aws:elbv2:loadbalancer"] == {"IdleTimeout": "900"}
    health = settings["aws:elasticbeanstalk:healthreporting:system"]
    rules = json.loads(health["ConfigDocument"])["Rules"]["Environment"]
    assert rules["Application"]["ApplicationRequests4xx"] == {"Enabled": False}
    assert rules["ELB"]["ELBRequests4xx"] == {"Enabled": False}
    env = settings["aws:elasticbeanstalk:application:environment"]
    assert "*.elasticbeanstalk.com" in env["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    assert "MLFLOW_BACKEND_URI" not in env  # bundled: SQLite in the container
    for absent in ("aws:elasticbeanstalk:application:environmentsecrets",
                   "aws:elbv2:listener:443", "aws:autoscaling:launchconfiguration"):  # fmt: skip
        assert absent not in settings


def test_option_settings_of_a_scaled_stack():
    settings = options(SCALED)
    assert settings["aws:autoscaling:asg"] == {"MinSize": "2", "MaxSize": "6"}
    assert settings["aws:ec2:instances"] == {"InstanceTypes": "m7g.large,m6g.large"}
    assert settings["aws:elbv2:loadbalancer"] == {"IdleTimeout": "3600"}  # the most EB allows
    assert settings["aws:autoscaling:launchconfiguration"] == {
        "IamInstanceProfile": "mlflow-eb-instance"
    }
    https = settings["aws:elbv2:listener:443"]
    assert (https["Protocol"], https["SSLCertificateArns"]) == ("HTTPS", CERT_ARN)
    assert https["SSLPolicy"].startswith("ELBSecurityPolicy-TLS13")
    env = settings["aws:elasticbeanstalk:application:environment"]
    hosts = env["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    assert {"mlflow.example.com", "mlflow-prod.eu-west-1.elasticbeanstalk.com"} <= set(hosts)
    assert "*.elasticbeanstalk.com" not in hosts  # the CNAME is known: only it
    assert "https://mlflow-prod.eu-west-1.elasticbeanstalk.com" in env[
        "MLFLOW_SERVER_CORS_ALLOWED_ORIGINS"
    ].split(",")
    assert env["MLFLOW_BACKEND_URI"] == "mysql+pymysql://mlflow@db.example.internal:3306/mlflow"
    assert env["MLFLOW_ARTIFACTS_DESTINATION"] == "s3://acme-mlflow/artifacts"
    assert env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert settings["aws:elasticbeanstalk:application:environmentsecrets"] == {
        "MLFLOW_HTPASSWD": SECRET_ARN,
        "MLFLOW_DB_PASSWORD": DB_ARN,
    }


def test_the_whole_backend_uri_as_a_secret_replaces_the_property():
    text = SCALED.replace(f'database_password: "{DB_ARN}"', f'backend_store_uri: "{URI_ARN}"')
    settings = options(text)
    assert "MLFLOW_BACKEND_URI" not in settings["aws:elasticbeanstalk:application:environment"]
    secrets = settings["aws:elasticbeanstalk:application:environmentsecrets"]
    assert secrets["MLFLOW_BACKEND_URI"] == URI_ARN


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("{secrets: {htpasswd: 'alice:$2y$12$abc'}}", "elastic_beanstalk.secrets.htpasswd"),
        ("{cname: mlflow.example.com}", "not an Elastic Beanstalk CNAME"),
        ("{instance_types: []}", "elastic_beanstalk.instance_types"),
        ("{https_certificate: 'my-cert'}", "an ACM certificate ARN"),
        ("{max_instances: 0}", "elastic_beanstalk.max_instances"),
    ],
)
def test_bad_elastic_beanstalk_settings_are_named(setting: str, message: str):
    with pytest.raises(UsageError) as caught:
        stack.parse(f"elastic_beanstalk: {setting}\n", "stack.yaml")
    assert message in str(caught.value)


def test_nginx_files_extend_ebs_server_without_replacing_it():
    files = eb_files()
    assert ".platform/nginx/nginx.conf" not in files  # EB's own stays
    server = files[".platform/nginx/conf.d/elasticbeanstalk/mlflow-server.conf"]
    # The shared fragment, unchanged: the same text the compose image carries.
    assert server == (Path(__file__).parent.parent / "nginx/mlflow-server.conf").read_text()
    assert "location / {" not in server  # EB's server has one; a second fails nginx -t
    http = files[".platform/nginx/conf.d/mlflow-runner.conf"]
    assert "default docker;" in http  # EB's upstream for the container
    assert "\nupstream docker" not in http  # EB defines it
    assert "proxy_cache_path /run/nginx-mlflow-auth " in http  # tmpfs on Amazon Linux 2023
    assert "listen 127.0.0.1:8079;" in http and "server 127.0.0.1:8079;" in http
    assert "include mlflow-verifier.conf;" in http


def test_dockerrun_is_version_1_with_mlflows_port():
    assert json.loads(eb_files("mlflow: {port: 5050}")["Dockerrun.aws.json"]) == {
        "AWSEBDockerrunVersion": "1",
        "Ports": [{"ContainerPort": 5050}],
    }


# -- the users hook, run by bash ------------------------------------------------------------


def run_hook(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The rendered hook with /etc/nginx moved under tmp_path and the current user's group
    for nginx's (the rest is the real script)."""
    script = eb_files()[".platform/hooks/predeploy/10_mlflow_users.sh"]
    group = subprocess.run(["id", "-gn"], capture_output=True, text=True).stdout.strip()
    script = script.replace("folder=/etc/nginx/", f"folder={tmp_path}/nginx/")
    script = script.replace("root:nginx", f"root:{group}").replace("-g nginx", f"-g {group}")
    hook = tmp_path / "hook.sh"
    hook.write_text(script)
    return subprocess.run(
        ["bash", str(hook)], capture_output=True, text=True,
        env={"PATH": os.environ["PATH"], **env}, check=False,
    )  # fmt: skip


BOB = "bob:$2y$04$" + "a" * 53
CAROL = "carol smith:$2b$12$" + "B" * 53


def test_hook_writes_the_users_file_for_nginx_only(tmp_path: Path):
    done = run_hook(tmp_path, {"MLFLOW_HTPASSWD": f"{BOB}\r\n{CAROL}\n\n"})
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"mlflow users: wrote 2 users to {tmp_path}/nginx/secrets/htpasswd\n"
    users = tmp_path / "nginx" / "secrets" / "htpasswd"
    assert users.read_text() == f"{BOB}\n{CAROL}\n"
    assert users.stat().st_mode & 0o777 == 0o640
    assert users.parent.stat().st_mode & 0o777 == 0o750
    generation = (tmp_path / "nginx" / "secrets" / "htpasswd.generation").read_text()
    assert generation.startswith("generation ") and generation.endswith(";\n")
    # Again (a configuration deployment): a new generation, so cached checks are dropped.
    assert run_hook(tmp_path, {"MLFLOW_HTPASSWD": BOB}).returncode == 0
    assert users.read_text() == f"{BOB}\n"
    assert (tmp_path / "nginx" / "secrets" / "htpasswd.generation").read_text() != generation


def test_hook_takes_base64_for_a_one_line_property(tmp_path: Path):
    value = base64.b64encode(f"{BOB}\n{CAROL}\n".encode()).decode()
    assert run_hook(tmp_path, {"MLFLOW_HTPASSWD": value}).returncode == 0
    assert (tmp_path / "nginx" / "secrets" / "htpasswd").read_text() == f"{BOB}\n{CAROL}\n"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "MLFLOW_HTPASSWD is missing or empty"),
        (" \n", "MLFLOW_HTPASSWD is missing or empty"),
        ("alice:correct horse battery", "entry 1 is not NAME:BCRYPT-HASH"),
        (f"{BOB}\nalice:$apr1$abcdefgh$0123456789abcdefghijkl", "entry 2 is not NAME:BCRYPT"),
        ("bm90IGEgdXNlcnMgZmlsZQ==", "entry 1 is not NAME:BCRYPT-HASH"),
        ("%%%", "neither a users file nor its base64"),
    ],
)
def test_hook_fails_the_deployment_without_valid_users(tmp_path: Path, value, message):
    users = tmp_path / "nginx" / "secrets" / "htpasswd"
    users.parent.mkdir(parents=True)
    users.write_text(BOB + "\n")
    done = run_hook(tmp_path, {} if value is None else {"MLFLOW_HTPASSWD": value})
    assert done.returncode == 1
    assert message in done.stderr
    assert len(done.stderr.splitlines()) == 1
    assert "correct horse" not in done.stderr + done.stdout  # never echoed
    assert users.read_text() == BOB + "\n"  # the previous users stay
    assert [p.name for p in users.parent.iterdir()] == ["htpasswd"]  # no temporary left


def test_hook_asks_get_config_when_the_variable_is_not_set():
    script = eb_files()[".platform/hooks/predeploy/10_mlflow_users.sh"]
    assert 'get-config environment -k "$name"' in script
    assert script.startswith("#!/bin/bash\n")


# -- configgen eb bundle ---------------------------------------------------------------------


def test_bundle_layout(configgen: Configgen, scaled: Path):
    done = configgen("eb", "bundle", "--out", "dist/ml.zip")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("wrote dist/ml.zip (")
    assert done.stderr == ""  # a complete stack: nothing to warn about
    path = scaled / "dist" / "ml.zip"
    assert path.stat().st_size < 2 * 2**20
    with zipfile.ZipFile(path) as archive:
        infos = {i.filename: i for i in archive.infolist()}
        names = set(infos)
        dockerfile = archive.read("Dockerfile").decode()
        for name, info in infos.items():
            mode = (info.external_attr >> 16) & 0o777
            hook = name.startswith((".platform/hooks/", ".platform/confighooks/"))
            assert mode == (0o755 if hook else 0o644), name
            assert b"\r\n" not in archive.read(name) or name.endswith(".crt")
    assert {"Dockerfile", "Dockerrun.aws.json", ".ebextensions/mlflow.config",
            ".platform/hooks/predeploy/10_mlflow_users.sh",
            ".platform/confighooks/predeploy/10_mlflow_users.sh",
            ".platform/nginx/conf.d/elasticbeanstalk/mlflow-server.conf",
            "entrypoint/configgen/container/entrypoint.py"} <= names  # fmt: skip
    assert not any(n.startswith(("secrets/", "compose/", "tests/")) for n in names)
    assert "docker-compose.yml" not in names and "__pycache__" not in str(names)
    assert "ARG MLFLOW_VERSION=3.17.2\n" in dockerfile and "EXPOSE 5000\n" in dockerfile
    # The same stack, the same bytes.
    bundle(configgen, scaled, "again.zip")
    assert (scaled / "again.zip").read_bytes() == path.read_bytes()
    assert configgen("eb", "check", "dist/ml.zip").returncode == 0


def test_bundle_pins_the_stacks_version_and_port(configgen: Configgen, scaled: Path):
    text = (scaled / "stack" / "stack.yaml").read_text()
    (scaled / "stack" / "stack.yaml").write_text(
        text.replace("mlflow:\n", 'mlflow:\n  version: "3.17.1"\n  port: 5050\n')
    )
    with zipfile.ZipFile(bundle(configgen, scaled)) as archive:
        dockerfile = archive.read("Dockerfile").decode()
        dockerrun = json.loads(archive.read("Dockerrun.aws.json"))
    assert "ARG MLFLOW_VERSION=3.17.1\n" in dockerfile and "EXPOSE 5050\n" in dockerfile
    assert dockerrun["Ports"] == [{"ContainerPort": 5050}]


def test_bundle_of_a_trial_stack_warns(configgen: Configgen, project: Path):
    add_user(configgen)
    done = configgen("eb", "bundle")
    assert done.returncode == 0, done.stderr
    assert (project / "dist" / "mlflow-eb.zip").is_file()
    warnings = done.stderr.splitlines()
    assert len(warnings) == 4
    # The test stack's tls.mode: off, without a certificate: plain HTTP on purpose, with the
    # warning `configgen render` gives for it.
    assert warnings[0] == f"configgen: warning: {tls.OFF_WARNING}"
    assert "lost when Elastic Beanstalk replaces it" in warnings[1]
    assert "proxy.trusted_proxies is empty" in warnings[2]
    assert "eb setenv MLFLOW_HTPASSWD=$(base64 -w0 secrets/nginx/htpasswd)" in warnings[3]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("backend_store: mysql+pymysql://mlflow@db.example.internal:3306/mlflow",
          "backend_store: bundled"),
         "elastic_beanstalk.max_instances is 6 but mlflow.backend_store is `bundled`"),
        (("backend_store: mysql+pymysql://mlflow@db.example.internal:3306/mlflow",
          "backend_store: sqlite:////var/lib/mlflow/m.db"),
         "mlflow.backend_store is SQLite (sqlite:////var/lib/mlflow/m.db)"),
        (("s3://acme-mlflow/artifacts", "file:///srv/artifacts"),
         "mlflow.artifact_destination is file:///srv/artifacts, not S3"),
        (("artifact_destination: s3://acme-mlflow/artifacts", "artifact_destination: bundled"),
         "mlflow.artifact_destination is `bundled`"),
        (("min_instances: 2", "min_instances: 8"),
         "elastic_beanstalk.min_instances (8) is above max_instances (6)"),
    ],
)  # fmt: skip
def test_bundle_refuses_a_stack_the_instances_would_split(
    configgen: Configgen, scaled: Path, change: tuple[str, str], message: str
):
    stack_file = scaled / "stack" / "stack.yaml"
    stack_file.write_text(stack_file.read_text().replace(*change))
    done = configgen("eb", "bundle")
    assert done.returncode == 2
    assert message in done.stderr
    (line,) = done.stderr.splitlines()  # one reason, one line
    assert line.startswith("configgen: refusing to bundle for Elastic Beanstalk: ")
    assert "Traceback" not in done.stderr
    assert not (scaled / "dist").exists()


def test_bundle_refuses_a_stack_without_users(configgen: Configgen, project: Path):
    done = configgen("eb", "bundle")
    assert done.returncode == 2
    assert "secrets/nginx/htpasswd has no users, so nobody could log in" in done.stderr
    add_user(configgen)
    assert configgen("htpasswd", "user", "remove", "alice").returncode == 0
    assert "has no users" in configgen("eb", "bundle").stderr


def test_bundle_refuses_a_user_the_hook_would_refuse(configgen: Configgen, project: Path):
    users = project / "secrets" / "nginx" / "htpasswd"
    users.parent.mkdir(parents=True)
    users.write_text("old:$apr1$abcdefgh$0123456789abcdefghijkl\n")
    done = configgen("eb", "bundle")
    assert done.returncode == 2
    assert "old is stored as apr_md5_crypt" in done.stderr
    assert "configgen htpasswd user passwd old" in done.stderr


# -- configgen eb check ----------------------------------------------------------------------


def rezip(source: Path, target: Path, change) -> Path:
    """A copy of `source` with each entry passed through change(info, data) -> (info, data),
    or dropped when it returns None."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            result = change(info, old.read(info))
            if result is not None:
                new.writestr(*result)
    return target


def renamed(info: zipfile.ZipInfo, name: str) -> zipfile.ZipInfo:
    copy = zipfile.ZipInfo(name, info.date_time)
    copy.external_attr, copy.create_system = info.external_attr, info.create_system
    return copy


HOOK = ".platform/hooks/predeploy/10_mlflow_users.sh"


def test_check_catches_a_parent_folder(configgen: Configgen, scaled: Path, tmp_path: Path):
    bad = rezip(bundle(configgen, scaled), tmp_path / "bad.zip",
                lambda i, d: (renamed(i, f"mlflow/{i.filename}"), d))  # fmt: skip
    done = configgen("eb", "check", str(bad))
    assert done.returncode == 1
    assert "everything is inside a parent folder mlflow/" in done.stdout
    assert done.stderr.startswith(f"configgen: {bad}: 1 problem; Elastic Beanstalk would")


def test_check_catches_a_hook_without_its_executable_bit(
    configgen: Configgen, scaled: Path, tmp_path: Path
):
    def strip_bit(info, data):
        if info.filename == HOOK:
            info.external_attr = (0o100644) << 16
        return info, data

    done = configgen("eb", "check", str(rezip(bundle(configgen, scaled), tmp_path / "x.zip",
                                               strip_bit)))  # fmt: skip
    assert done.returncode == 1
    assert done.stdout == f"{HOOK}: not executable (mode 644); zip it with its mode kept " \
        "(chmod +x, then zip on Linux or macOS)\n"  # fmt: skip


def test_check_catches_a_crlf_hook(configgen: Configgen, scaled: Path, tmp_path: Path):
    def crlf(info, data):
        return info, data.replace(b"\n", b"\r\n") if info.filename == HOOK else data

    done = configgen("eb", "check", str(rezip(bundle(configgen, scaled), tmp_path / "x.zip", crlf)))
    assert done.returncode == 1
    assert done.stdout == f"{HOOK}: has Windows (CRLF) line endings; the hook fails on Linux\n"


def test_check_catches_a_secret_inside(configgen: Configgen, scaled: Path, tmp_path: Path):
    password = (scaled / "secrets" / "mysql_password").read_text().strip()
    users = (scaled / "secrets" / "nginx" / "htpasswd").read_text()

    def leak(info, data):
        if info.filename == "Dockerrun.aws.json":
            return info, data
        if info.filename == "certs/README.md":
            return info, data + f"\npassword: {password}\n{users}".encode()
        return info, data

    done = configgen("eb", "check", str(rezip(bundle(configgen, scaled), tmp_path / "x.zip", leak)))
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        "certs/README.md: holds the secret of secrets/mysql_password",
        "certs/README.md: holds the secret of secrets/nginx/htpasswd (alice)",
    ]
    assert password not in done.stdout + done.stderr


def test_check_reads_option_names_and_dockerrun(configgen: Configgen, scaled: Path, tmp_path: Path):
    def damage(info, data):
        if info.filename == ".ebextensions/mlflow.config":
            text = data.decode()
            text = text.replace("HealthCheckPath", "HealthCheckPth")
            text = text.replace("aws:elbv2:loadbalancer:", "aws:elbv2:loadbalancers:")
            text = text.replace(f'MLFLOW_HTPASSWD: "{SECRET_ARN}"', "MLFLOW_HTPASSWD: alice:x")
            return info, text.encode()
        if info.filename == "Dockerrun.aws.json":
            return info, b'{"AWSEBDockerrunVersion": 2, "containerDefinitions": []}'
        if info.filename == ".platform/nginx/conf.d/elasticbeanstalk/mlflow-server.conf":
            return info, data + b"\nlocation / {\n    return 200;\n}\n"
        return info, data

    done = configgen("eb", "check", str(rezip(bundle(configgen, scaled), tmp_path / "x.zip",
                                               damage)))  # fmt: skip
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    expected = [
        "has no option HealthCheckPth (did you mean HealthCheckPath?)",
        "unknown option namespace aws:elbv2:loadbalancers (did you mean aws:elbv2:loadbalancer?)",
        "MLFLOW_HTPASSWD must be a Secrets Manager or SSM parameter ARN",
        "AWSEBDockerrunVersion is 2 (ECS platform); the Docker platform without Compose reads",
        "mlflow-server.conf: defines `location /`, which Elastic Beanstalk's server already has",
    ]
    for text in expected:
        assert sum(text in line for line in lines) == 1, (text, lines)
    assert len(lines) == len(expected)


def test_check_catches_compose_and_amazon_linux_1_recipes(
    configgen: Configgen, scaled: Path, tmp_path: Path
):
    good = bundle(configgen, scaled)
    bad = shutil.copy(good, tmp_path / "x.zip")
    with zipfile.ZipFile(bad, "a") as archive:
        archive.writestr("docker-compose.yml", "services: {}\n")
        archive.writestr(".ebextensions/nginx.config",
                         "files:\n  /etc/nginx/conf.d/proxy.conf:\n    content: x\n")  # fmt: skip
        archive.writestr(".ebextensions/readme.txt", "notes")
        archive.writestr(".platform/hooks/appdeploy/post/01.sh", "#!/bin/bash\n")
    lines = configgen("eb", "check", str(bad)).stdout.splitlines()
    assert len(lines) == 4, lines
    assert "docker-compose.yml beside Dockerrun.aws.json" in lines[0]
    joined = "\n".join(lines)
    assert ".ebextensions/nginx.config: writes /etc/nginx with files:, the Amazon Linux 1" in joined
    assert ".ebextensions/readme.txt: Elastic Beanstalk reads only .ebextensions/*.config" in joined
    assert ".platform/hooks/appdeploy/post/01.sh: hooks live in .platform/hooks/PHASE/" in joined


def test_check_bad_input(configgen: Configgen, tmp_path: Path):
    missing = configgen("eb", "check", str(tmp_path / "nope.zip"))
    assert missing.returncode == 2
    assert missing.stderr == f"configgen: {tmp_path}/nope.zip: no such file\n"
    (tmp_path / "text.zip").write_text("not a zip")
    done = configgen("eb", "check", str(tmp_path / "text.zip"))
    assert (done.returncode, done.stdout) == (1, f"{tmp_path}/text.zip: not a zip file\n")


def test_bundle_keeps_no_zip_that_fails_its_own_check(configgen: Configgen, scaled: Path):
    # A secret that happens to be text of the bundle: the scan must catch it before upload.
    (scaled / "secrets" / "mysql_password").write_text("AWSEBDockerrunVersion\n")
    done = configgen("eb", "bundle", "--out", "dist/ml.zip")
    assert done.returncode == 1
    assert "  | Dockerrun.aws.json: holds the secret of secrets/mysql_password" in done.stderr
    assert re.fullmatch(
        r"configgen: the bundle failed its own check \(\d+ problems? above\); nothing kept",
        done.stderr.splitlines()[-1],
    )
    assert list((scaled / "dist").iterdir()) == []
