"""The platform image's pieces that can be checked without building it: what it relies on in
MLflow (the uvicorn launch the image does itself, the migrations' revisions), its nginx
configuration once PID 1 has filled it in, and its build context."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from configgen.container import migrate, platform, server
from configgen.targets.platform import files
from tests.support import REPO

CONTEXT = REPO / files.FOLDER


class _Launched(Exception):
    pass


def test_the_uvicorn_launch_is_what_mlflow_server_does(monkeypatch, tmp_path: Path):
    """The image starts MLflow's app without the `mlflow server` parent (200 MB that only
    waits). This runs MLflow's own launcher, stopped where it would start uvicorn, and
    compares: an MLflow upgrade that changes the contract between its CLI and its app fails
    here, not in production."""
    import mlflow.server

    captured = {}

    def fake_exec(command, extra_env, **_kwargs):
        captured.update(command=command, env=extra_env)
        raise _Launched

    monkeypatch.setattr(mlflow.server, "_exec_cmd", fake_exec)
    monkeypatch.setenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    socket = str(tmp_path / "mlflow.sock")
    with pytest.raises(_Launched):
        mlflow.server._run_server(
            file_store_path=uri, registry_store_uri=uri,
            default_artifact_root=server.PROXIED_ARTIFACT_ROOT, serve_artifacts=True,
            artifacts_only=False, artifacts_destination="s3://bucket/path",
            host="127.0.0.1", port=server.DEFAULT_PORT, workers=2,
            uvicorn_opts=f"--uds {socket}",
        )  # fmt: skip
    ours = server.uvicorn_environment(
        backend_uri=uri, artifacts_destination="s3://bucket/path",
        boot_id=captured["env"]["_MLFLOW_SERVER_BOOT_ID"], allowed_hosts="h", cors_origins="o",
    )  # fmt: skip
    # What the CLI itself sets before the launcher (checked against its source below).
    cli_set = {"MLFLOW_SERVER_ALLOWED_HOSTS", "MLFLOW_SERVER_CORS_ALLOWED_ORIGINS",
               "MLFLOW_ENABLE_WORKSPACES"}  # fmt: skip
    assert {k: v for k, v in ours.items() if k not in cli_set} == captured["env"]
    log_config = platform.log_config()
    assert captured["command"] == server.uvicorn_command(
        sys.executable, log_config, socket=socket, workers=2
    )
    assert Path(log_config).is_file()


def test_the_cli_sets_the_variables_the_image_sets_itself():
    import mlflow.cli

    source = Path(mlflow.cli.__file__).read_text()
    for name in ("MLFLOW_SERVER_ALLOWED_HOSTS", "MLFLOW_SERVER_CORS_ALLOWED_ORIGINS"):
        assert f'os.environ["{name}"]' in source, name
    assert "os.environ[MLFLOW_ENABLE_WORKSPACES.name]" in source


def test_the_migrations_know_their_revisions(tmp_path: Path):
    """What tells a database migrated by a newer image (configgen/container/migrate.py)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    known = migrate.known_revisions(uri)
    assert len(known) > 50
    assert migrate.current_revision(uri) is None
    env = {**os.environ, server.BACKEND_STORE_VARIABLE: uri, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "configgen.container.migrate"], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert migrate.current_revision(uri) in known


def _filled_in(tmp_path: Path, port: int) -> Path:
    conf = tmp_path / "run" / "nginx"
    (conf / "secrets").mkdir(parents=True)
    values = {"PORT": str(port), "MLFLOW_RUN_DIR": str(tmp_path / "run")}
    for template in (CONTEXT / "nginx").glob("*.conf"):
        (conf / template.name).write_text(platform.substitute(template.read_text(), values))
    (conf / "secrets" / "htpasswd").write_text("")  # the default stack's users_file
    (conf / "secrets" / "htpasswd.generation").write_text("generation 1;\n")
    return conf


def test_every_placeholder_is_filled_in(tmp_path: Path):
    conf = _filled_in(tmp_path, 8080)
    for path in conf.glob("*.conf"):
        text = path.read_text()
        assert "${" not in text, path.name
    assert "listen 8080;" in (conf / "nginx.conf").read_text()


@pytest.mark.parametrize("name", ["nginx.conf", "nginx-verifier.conf"])
def test_the_filled_in_configuration_is_valid_nginx(tmp_path: Path, name: str):
    nginx = shutil.which("nginx", path="/usr/sbin:/usr/bin")
    assert nginx, "tests/run.sh installs nginx"
    conf = _filled_in(tmp_path, 18080)
    done = subprocess.run([nginx, "-t", "-p", f"{conf}/", "-c", str(conf / name), "-e", "stderr"],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_the_router_is_believed_for_one_hop_only():
    http = (CONTEXT / "nginx" / "nginx.conf").read_text()
    assert "real_ip_header X-Forwarded-For;" in http
    assert "real_ip_recursive off;" in http
    assert "real_ip_recursive on;" not in (CONTEXT / "nginx" / "mlflow-http.conf").read_text()


def test_the_dockerfile_copies_only_from_its_own_folder():
    """Heroku builds with the Dockerfile's folder as the context."""
    sources = []
    for line in (CONTEXT / "Dockerfile").read_text().splitlines():
        if match := re.match(r"(COPY|ADD)\s+(?!--from)(.+)\s+\S+$", line):
            sources += match.group(2).split()
    assert sources, "no COPY found"
    for source in sources:
        assert (CONTEXT / source).exists(), source
        assert (CONTEXT / source).resolve().is_relative_to(CONTEXT.resolve()), source


def test_the_image_has_every_module_its_code_imports():
    """The copied container code imports only the standard library and itself."""
    code = CONTEXT / "entrypoint"
    done = subprocess.run(
        [sys.executable, "-I", "-c", "import sys; sys.path[:0] = [sys.argv[1]]; "
         "import configgen.container.platform, configgen.container.migrate", str(code)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_no_other_app_on_the_platform_is_a_trusted_origin():
    """MLflow accepts *.herokuapp.com in the Host header (the app's own name is not known when
    the image is built), but a page of another Heroku app must not call the API with the
    user's browser login: the platforms' domains are not CORS origins."""
    settings = json.loads((CONTEXT / "settings.json").read_text())
    assert "*.herokuapp.com" in settings["allowed_hosts"]
    assert not any("herokuapp" in o or "awsapprunner" in o for o in settings["cors_origins"])


def test_the_users_go_where_the_fragments_look_for_them():
    """settings.json says where PID 1 writes the users; the verifier reads that file, whatever
    the stack file names it."""
    from tests.test_render import rendered

    files = rendered("auth: {htpasswd: secrets/nginx/team-users}\n")
    settings = json.loads(files["stack/platform/settings.json"])
    assert settings["users_file"] == "secrets/team-users"
    verifier = files["stack/platform/nginx/mlflow-verifier.conf"]
    assert f"auth_basic_user_file {settings['users_file']};" in verifier
