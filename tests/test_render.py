"""`configgen render`: deterministic output, drift checks, and one test per rendered file."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from configgen import render, stack
from tests.support import REPO, Configgen, run_configgen, snapshot

NGINX_FILES = ["nginx.conf", "mlflow-http.conf", "mlflow-server.conf", "mlflow-proxy.conf"]
RENDERED = [*(f"nginx/{n}" for n in NGINX_FILES), "compose/production.yml", "compose/.env"]


def rendered(text: str = "") -> dict[str, str]:
    """A fresh render of a stack file given as text, in memory."""
    project = stack.Project(Path("stack/stack.yaml"), Path("."), stack.parse(text, "stack.yaml"))
    return {k: v.decode() for k, v in render.render(project, render.outputs(project)).items()}


def nginx_t(folder: Path) -> subprocess.CompletedProcess[str]:
    """Debian's nginx checks the configuration in `folder`, as it would load it."""
    assert shutil.which("nginx"), "nginx is installed by tests/run.sh"
    return subprocess.run(
        ["nginx", "-t", "-p", f"{folder}/", "-c", f"{folder}/nginx.conf", "-e", "stderr"],
        capture_output=True,
        text=True,
    )


# -- the committed output -----------------------------------------------------------------


def test_committed_output_matches_the_default_stack():
    done = run_configgen("render", "--check", cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == f"all {len(RENDERED)} rendered files in . match the stack file\n"


def test_committed_nginx_config_passes_nginx_t(tmp_path: Path):
    for name in NGINX_FILES:
        shutil.copy(REPO / "nginx" / name, tmp_path / name)
    done = nginx_t(tmp_path)
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr


def test_changed_stack_file_renders_a_valid_config(tmp_path: Path):
    files = rendered(
        "hosts: [mlflow.example.com, ml.example.org]\n"
        "proxy: {max_body_size: 0, timeout_seconds: 3600}\n"
        "auth: {realm: Team ML, htpasswd: /etc/users/team.htpasswd}\n"
        "mlflow: {port: 5555}\n"
    )
    for name, text in files.items():
        if name.startswith("nginx/"):
            (tmp_path / Path(name).name).write_text(text)
    assert nginx_t(tmp_path).returncode == 0
    assert "server_name mlflow.example.com ml.example.org;" in files["nginx/nginx.conf"]
    assert "default mlflow:5555;" in files["nginx/nginx.conf"]
    assert "client_max_body_size 0;" in files["nginx/mlflow-proxy.conf"]
    assert "proxy_read_timeout 3600s;" in files["nginx/mlflow-proxy.conf"]
    assert 'auth_basic "Team ML";' in files["nginx/mlflow-server.conf"]
    assert "auth_basic_user_file secrets/team.htpasswd;" in files["nginx/mlflow-server.conf"]


# -- determinism and drift ------------------------------------------------------------------


def test_two_renders_are_byte_identical(project: Path, tmp_path_factory):
    (project / "stack" / "stack.yaml").write_text("hosts: [b.example.com, a.example.com]\n")
    outs = [tmp_path_factory.mktemp("out1"), tmp_path_factory.mktemp("out2")]
    for out in outs:
        done = run_configgen("render", "--out", str(out), cwd=project)
        assert done.returncode == 0, done.stderr
    first, second = (snapshot(out) for out in outs)
    assert first == second
    assert sorted(first) == sorted(["nginx", "compose", *RENDERED])
    # From another folder, through --stack: still the same bytes.
    elsewhere = run_configgen(
        "--stack",
        str(project / "stack" / "stack.yaml"),
        "render",
        "--out",
        str(outs[1]),
        cwd=Path("/"),
    )
    assert elsewhere.returncode == 0
    assert snapshot(outs[1]) == first


def test_render_writes_into_the_project_and_is_idempotent(configgen: Configgen, project: Path):
    first = configgen("render")
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [f"wrote {path}" for path in RENDERED]
    before = snapshot(project)
    again = configgen("render")
    assert again.stdout == f"all {len(RENDERED)} rendered files in . were already up to date\n"
    assert snapshot(project) == before


def test_check_lists_every_file_that_drifted(configgen: Configgen, project: Path):
    assert configgen("render").returncode == 0
    clean = configgen("render", "--check")
    assert (clean.returncode, clean.stdout) == (
        0,
        f"all {len(RENDERED)} rendered files in . match the stack file\n",
    )

    server = project / "nginx" / "mlflow-server.conf"
    server.write_text(server.read_text().replace("auth_basic_user_file", "#auth_basic_user_file"))
    (project / "nginx" / "mlflow-http.conf").unlink()
    before = snapshot(project)
    drifted = configgen("render", "--check")
    assert drifted.returncode == 1
    assert drifted.stdout.splitlines() == [
        "nginx/mlflow-http.conf: missing",
        "nginx/mlflow-server.conf: differs from a fresh render",
    ]
    assert drifted.stderr == (
        f"configgen: 2 of {len(RENDERED)} rendered files in . differ from the stack file; "
        "run `configgen render` and commit the result\n"
    )
    assert snapshot(project) == before  # --check never writes

    # A stack file change is drift too, until rendered.
    assert configgen("render").returncode == 0
    (project / "stack" / "stack.yaml").write_text("hosts: [ml.example.com]\n")
    assert configgen("render", "--check").stdout == (
        "nginx/nginx.conf: differs from a fresh render\n"
        "compose/production.yml: differs from a fresh render\n"
    )


# -- one test per rendered file -------------------------------------------------------------


def test_nginx_conf():
    text = rendered()["nginx/nginx.conf"]
    assert text.startswith("# Rendered by configgen from stack/stack.yaml")
    assert "include mlflow-http.conf;" in text
    assert "include mlflow-server.conf;" in text
    assert "listen 8080;" in text
    assert "server_name localhost;" in text
    # MLflow by its compose service name, re-resolved through Docker's DNS.
    assert "resolver 127.0.0.11 valid=10s ipv6=off;" in text
    assert re.search(r"map \$host \$mlflow_upstream \{\s+default mlflow:5000;\s+\}", text)
    assert "access_log /dev/stdout mlflow_stack;" in text


def test_mlflow_http_conf_never_logs_credentials():
    text = rendered()["nginx/mlflow-http.conf"]
    log_format = text[text.index("log_format") :]
    assert "$remote_user" in log_format
    assert "authorization" not in log_format.lower()
    assert "$http_" in log_format  # headers are logged, but only named, harmless ones
    assert set(re.findall(r"\$http_\w+", log_format)) == {"$http_referer", "$http_user_agent"}


def test_mlflow_server_conf_health_open_everything_else_authenticated():
    text = rendered()["nginx/mlflow-server.conf"]
    assert "server_tokens off;" in text
    health = text[text.index("location = /health") :].split("}")[0]
    assert "auth_basic off;" in health
    assert "include mlflow-proxy.conf;" in health
    root = text[text.index("location / {") :].split("}")[0]
    assert 'auth_basic "MLflow";' in root
    assert "auth_basic_user_file secrets/htpasswd;" in root
    assert "include mlflow-proxy.conf;" in root
    assert len(re.findall(r"^location ", text, re.MULTILINE)) == 3
    assert "return 200" not in text  # it would answer before auth_basic runs
    server_info = text[text.index("location = /api/3.0/mlflow/server-info") :].split("}")[0]
    assert "return 404;" in server_info


@pytest.mark.parametrize(
    "directive",
    [
        "proxy_pass http://$mlflow_upstream;",
        "proxy_http_version 1.1;",
        "client_max_body_size 16g;",
        "proxy_request_buffering off;",
        "proxy_max_temp_file_size 0;",
        "proxy_send_timeout 900s;",
        "proxy_read_timeout 900s;",
        "proxy_set_header Host $host;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header X-Forwarded-Host $host;",
        'proxy_set_header Authorization "";',
    ],
)
def test_mlflow_proxy_conf(directive: str):
    assert directive in rendered()["nginx/mlflow-proxy.conf"].splitlines()
