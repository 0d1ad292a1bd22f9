"""`configgen render`: deterministic output, drift checks, and one test per rendered file."""

from __future__ import annotations

import datetime
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from configgen import render, stack, targets, tls
from tests.support import REPO, Configgen, run_configgen, snapshot

NGINX_FILES = [
    "nginx.conf",
    "nginx-verifier.conf",
    "mlflow-http.conf",
    "mlflow-server.conf",
    "mlflow-health.conf",
    "mlflow-proxy.conf",
    "mlflow-verifier.conf",
]
EB_FILES = [
    "Dockerrun.aws.json",
    ".ebextensions/mlflow.config",
    ".platform/nginx/conf.d/mlflow-http.conf",
    ".platform/nginx/conf.d/elasticbeanstalk/mlflow-server.conf",
    ".platform/nginx/mlflow-health.conf",
    ".platform/nginx/mlflow-proxy.conf",
    ".platform/nginx/mlflow-verifier.conf",
    ".platform/nginx/conf.d/mlflow-runner.conf",
    ".platform/hooks/predeploy/10_mlflow_users.sh",
    ".platform/confighooks/predeploy/10_mlflow_users.sh",
]
CONTAINER_CODE = (
    "__init__.py", "errors.py", "envvars.py", "container/__init__.py", "container/bucket.py",
    "container/database_url.py", "container/entrypoint.py", "container/migrate.py",
    "container/server.py", "container/stores.py",
)
MLFLOW_IMAGE = [
    "stack/mlflow/Dockerfile",
    "stack/mlflow/.dockerignore",
    "stack/mlflow/certs/README.md",
    *(f"stack/mlflow/entrypoint/configgen/{n}" for n in CONTAINER_CODE),
]
PLATFORM_IMAGE = [
    "stack/platform/Dockerfile",
    "stack/platform/.dockerignore",
    "stack/platform/certs/README.md",
    "stack/platform/settings.json",
    *(f"stack/platform/nginx/{n}" for n in NGINX_FILES),
    *(f"stack/platform/entrypoint/configgen/{n}" for n in (
        *CONTAINER_CODE, "fileio.py", "supervisor.py", "container/platform.py",
        "container/platform_env.py", "container/users.py",
    )),
]  # fmt: skip
HEROKU_FILES = ["heroku.yml", "app.json"]
RENDERED = [
    *(f"nginx/{n}" for n in NGINX_FILES),
    "nginx/Dockerfile",
    "nginx/docker-entrypoint.sh",
    *MLFLOW_IMAGE,
    "compose/production.yml",
    "compose/.env",
    *EB_FILES,
    *PLATFORM_IMAGE,
    *HEROKU_FILES,
    "stack/app-runner.yaml",
]


def rendered(text: str = "") -> dict[str, str]:
    """A fresh render of a stack file given as text, in memory."""
    project = stack.Project(Path("stack/stack.yaml"), Path("."), stack.parse(text, "stack.yaml"))
    return {k: v.data.decode() for k, v in render.render(project, targets.outputs(project)).items()}


def nginx_t(folder: Path, conf: str = "nginx.conf") -> subprocess.CompletedProcess[str]:
    """Debian's nginx checks the configuration in `folder`, as it would load it."""
    assert shutil.which("nginx"), "nginx is installed by tests/run.sh"
    return subprocess.run(
        ["nginx", "-t", "-p", f"{folder}/", "-c", f"{folder}/{conf}", "-e", "stderr"],
        capture_output=True,
        text=True,
    )


# -- the committed output -----------------------------------------------------------------


def test_committed_output_matches_the_default_stack():
    done = run_configgen("render", "--check", cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == f"all {len(RENDERED)} rendered files in . match the stack file\n"


def certificate_in(folder: Path) -> None:
    """Put a certificate and key in `folder` where nginx.conf expects the compose secrets."""
    cert, key = tls.self_signed(stack.Stack(), datetime.datetime.now(datetime.UTC))
    (folder / "certificate.pem").write_bytes(cert)
    (folder / "key.pem").write_bytes(key)
    conf = folder / "nginx.conf"
    text = conf.read_text()
    assert "ssl_certificate /run/secrets/tls_certificate;" in text
    text = text.replace("/run/secrets/tls_certificate", f"{folder}/certificate.pem")
    conf.write_text(text.replace("/run/secrets/tls_key", f"{folder}/key.pem"))


def test_committed_nginx_config_passes_nginx_t(tmp_path: Path):
    for name in NGINX_FILES:
        shutil.copy(REPO / "nginx" / name, tmp_path / name)
    certificate_in(tmp_path)
    done = nginx_t(tmp_path)
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr
    # nginx -t binds the verifier's socket: here in tmp_path instead of the compose volume.
    verifier = tmp_path / "nginx-verifier.conf"
    text = verifier.read_text()
    assert "listen unix:/run/mlflow-auth/auth.sock;" in text
    verifier.write_text(text.replace("/run/mlflow-auth/", f"{tmp_path}/"))
    done = nginx_t(tmp_path, "nginx-verifier.conf")
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr


def test_changed_stack_file_renders_a_valid_config(tmp_path: Path):
    files = rendered(
        "hosts: [mlflow.example.com, ml.example.org]\n"
        "proxy: {max_body_size: 0, timeout_seconds: 3600}\n"
        "auth: {realm: Team ML, htpasswd: /etc/users/team.htpasswd, cache_seconds: 300,"
        " verify_rate_per_client: 7, verify_rate_total: 20, verify_burst: 9, stale_seconds: 900}\n"
        "mlflow: {port: 5555}\n"
    )
    for name, text in files.items():
        if name.startswith("nginx/"):
            (tmp_path / Path(name).name).write_text(text)
    certificate_in(tmp_path)
    assert nginx_t(tmp_path).returncode == 0
    assert "server_name mlflow.example.com ml.example.org;" in files["nginx/nginx.conf"]
    assert "default mlflow:5555;" in files["nginx/nginx.conf"]
    assert "client_max_body_size 0;" in files["nginx/mlflow-proxy.conf"]
    assert "proxy_read_timeout 3600s;" in files["nginx/mlflow-proxy.conf"]
    verifier = files["nginx/mlflow-verifier.conf"]
    assert 'auth_basic "Team ML";' in verifier
    assert "auth_basic_user_file secrets/team.htpasswd;" in verifier
    assert "limit_req zone=mlflow_auth_client burst=9 delay=1;" in verifier
    assert "proxy_cache_valid 200 300s;" in files["nginx/mlflow-server.conf"]
    http = files["nginx/mlflow-http.conf"]
    assert "zone=mlflow_auth_client:1m rate=7r/s;" in http
    assert "zone=mlflow_auth_total:64k rate=20r/s;" in http
    assert "inactive=900s" in files["nginx/nginx.conf"]  # stale_seconds


# -- determinism and drift ------------------------------------------------------------------


def test_two_renders_are_byte_identical(project: Path, tmp_path_factory):
    (project / "stack" / "stack.yaml").write_text("hosts: [b.example.com, a.example.com]\n")
    outs = [tmp_path_factory.mktemp("out1"), tmp_path_factory.mktemp("out2")]
    for out in outs:
        done = run_configgen("render", "--out", str(out), cwd=project)
        assert done.returncode == 0, done.stderr
    first, second = (snapshot(out) for out in outs)
    assert first == second
    folders = {str(parent) for path in RENDERED for parent in Path(path).parents} - {"."}
    assert sorted(first) == sorted([*folders, *RENDERED])
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
    server.write_text(server.read_text().replace("auth_request", "#auth_request"))
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
        ".ebextensions/mlflow.config: differs from a fresh render\n"
        ".platform/nginx/conf.d/mlflow-runner.conf: differs from a fresh render\n"
        "stack/platform/settings.json: differs from a fresh render\n"
        "stack/platform/nginx/nginx.conf: differs from a fresh render\n"
    )

    # Elastic Beanstalk runs hooks as programs: a lost executable bit is drift, the other
    # bits are not (a checkout made with umask 002 has 0775 programs and 0664 files).
    assert configgen("render").returncode == 0
    hook = project / ".platform" / "hooks" / "predeploy" / "10_mlflow_users.sh"
    assert hook.stat().st_mode & 0o777 == 0o755
    hook.chmod(0o775)
    (project / "compose" / "production.yml").chmod(0o664)
    assert configgen("render", "--check").returncode == 0
    assert configgen("render").stdout.startswith("all ")  # nothing rewritten
    hook.chmod(0o664)
    assert configgen("render", "--check").stdout == (
        ".platform/hooks/predeploy/10_mlflow_users.sh: not executable (it is run as a "
        "program); fix it with `chmod +x .platform/hooks/predeploy/10_mlflow_users.sh` or "
        "`configgen render`\n"
    )
    assert configgen("render").stdout == "wrote .platform/hooks/predeploy/10_mlflow_users.sh\n"
    assert hook.stat().st_mode & 0o777 == 0o755


# -- one test per rendered file -------------------------------------------------------------


def test_nginx_entrypoint_looks_for_the_stacks_users_file():
    default = rendered()["nginx/docker-entrypoint.sh"]
    assert "if [ ! -r /etc/nginx/secrets/htpasswd ]; then" in default
    # Another name for the users file: the warning must look for that one (it used to look
    # for `htpasswd` whatever the stack said, and warned of a missing file that was there).
    other = rendered("auth: {htpasswd: secrets/nginx/team.users}")["nginx/docker-entrypoint.sh"]
    assert "if [ ! -r /etc/nginx/secrets/team.users ]; then" in other
    assert "secrets/htpasswd" not in other
    assert subprocess.run(["sh", "-n", "-c", other]).returncode == 0
    assert other.startswith("#!/bin/sh\n# Rendered by configgen")



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
    # The auth cache on the tmpfs compose mounts at /var/lib/nginx; the verifier is another
    # nginx, on a unix socket in the auth-socket volume: this one never runs bcrypt.
    assert "proxy_cache_path /var/lib/nginx/mlflow-auth levels=1:2 keys_zone=mlflow_auth:1m" in text
    assert "server unix:/run/mlflow-auth/auth.sock;" in text
    assert "listen unix:" not in text
    assert "mlflow-verifier.conf;" not in text
    assert "auth_basic" not in text


def test_nginx_verifier_conf():
    text = rendered()["nginx/nginx-verifier.conf"]
    assert text.startswith("# Rendered by configgen from stack/stack.yaml")
    # One worker: the limits keep it to a few checks a second.
    assert "worker_processes 1;" in text
    assert "pid /run/nginx-verifier.pid;" in text
    assert "include mlflow-http.conf;" in text
    server = text[text.index("server {") :]
    assert "listen unix:/run/mlflow-auth/auth.sock;" in server
    assert "access_log /dev/stdout mlflow_auth;" in server
    assert "include mlflow-verifier.conf;" in server
    assert "mlflow-server.conf" not in text


def test_mlflow_http_conf_never_logs_credentials():
    text = rendered()["nginx/mlflow-http.conf"]
    for name in ("mlflow_stack", "mlflow_auth"):
        log_format = text[text.index(f"log_format {name}") :].split(";")[0]
        assert "$remote_user" in log_format
        assert "authorization" not in log_format.lower()
        assert set(re.findall(r"\$http_\w+", log_format)) <= {
            "$http_referer", "$http_user_agent", "$http_x_mlflow_auth_client"
        }  # fmt: skip


def test_mlflow_http_conf_limits_generation_and_trusted_proxies():
    text = rendered()["nginx/mlflow-http.conf"]
    assert "limit_req_zone $http_x_mlflow_auth_client zone=mlflow_auth_client:1m rate=1r/s;" in text
    assert "rate=4r/s;" in text
    assert re.search(
        r'map "generation" \$mlflow_auth_generation \{\s+include secrets/\*\.generation;', text
    )
    assert "set_real_ip_from" not in text  # no X-Forwarded-For believed by default
    trusted = rendered("proxy: {trusted_proxies: [10.0.0.0/16, 192.0.2.7]}")[
        "nginx/mlflow-http.conf"
    ]
    assert "set_real_ip_from 10.0.0.0/16;\nset_real_ip_from 192.0.2.7;" in trusted
    assert "real_ip_header X-Forwarded-For;" in trusted


def test_mlflow_server_conf_health_open_everything_else_authenticated():
    text = rendered()["nginx/mlflow-server.conf"]
    assert "server_tokens off;" in text
    assert "include mlflow-health.conf;" in text
    root = text[text.index("location ~ ^/ {") :].split("\n}")[0]
    assert "auth_request /_mlflow_auth;" in root
    assert "include mlflow-proxy.conf;" in root
    assert "error_page 403 = @mlflow_auth_busy;" in root  # refused by the limits: 429
    auth = text[text.index("location = /_mlflow_auth") :].split("}")[0]
    for directive in (
        "internal;",
        "proxy_pass http://mlflow_auth_verifier;",
        "proxy_pass_request_body off;",
        "proxy_set_header X-MLflow-Auth-Client $remote_addr;",
        "proxy_cache mlflow_auth;",
        'proxy_cache_key "$mlflow_auth_generation $http_authorization";',
        "proxy_cache_valid 200 60s;",  # successes only
        "proxy_cache_lock on;",
        # an expired success still counts when the limits (403) or a dead verifier refuse it
        "proxy_cache_use_stale updating http_403 error timeout;",
    ):
        assert directive in auth, directive
    # server-info, the disabled features (4 for the gateway, the assistant), everything else,
    # the 429 answer and the subrequest.
    assert len(re.findall(r"^location ", text, re.MULTILINE)) == 9
    assert "return 200" not in text  # it would answer before auth_basic runs
    server_info = text[text.index("location = /api/3.0/mlflow/server-info") :].split("}")[0]
    assert "return 404;" in server_info
    # Another site's page is refused before any location, /health's included.
    assert text.index("if ($mlflow_foreign_origin)") < text.index("include mlflow-health.conf;")


def test_mlflow_health_conf_sends_mlflow_a_fixed_request():
    text = rendered()["nginx/mlflow-health.conf"]
    health = text[text.index("location = /health {") :]
    for directive in (
        "proxy_pass http://$mlflow_upstream/health;",  # a URI of its own: not the client's
        "proxy_method GET;",
        "proxy_pass_request_headers off;",
        "proxy_pass_request_body off;",
        "client_max_body_size 1k;",
        "limit_except GET {",  # GET and HEAD; anything else 403
    ):
        assert directive in health, directive
    assert "auth_request" not in health and "include" not in health


@pytest.mark.parametrize(("features", "blocked"), [("[]", True), ("[gateway]", False)])
def test_features_stay_off_unless_the_stack_file_names_them(features: str, blocked: bool):
    files = rendered(f"mlflow: {{features: {features}}}")
    server = files["nginx/mlflow-server.conf"]
    assert ("location ^~ /gateway/ {" in server) == blocked
    assert "location ^~ /ajax-api/3.0/mlflow/assistant/ {" in server  # never offered
    compose = files["compose/production.yml"]
    assert f'MLFLOW_ENABLE_AI_GATEWAY: "{str(not blocked).lower()}"' in compose
    assert 'MLFLOW_SERVER_ENABLE_JOB_EXECUTION: "false"' in compose
    assert 'MLFLOW_ENABLE_REMOTE_ASSISTANT: "false"' in compose
    assert 'MLFLOW_DISABLE_TELEMETRY: "true"' in compose
    eb = files[".ebextensions/mlflow.config"]
    assert f'MLFLOW_ENABLE_AI_GATEWAY: "{str(not blocked).lower()}"' in eb


def test_own_origins_are_https_pages_of_the_stack_hosts_only():
    files = rendered("hosts: [mlflow.example.com, '*.ml.example.org']")
    conf = files["nginx/nginx.conf"]
    assert (
        r'"~*^https://(mlflow\.example\.com|[^.]+\.ml\.example\.org|localhost|127\.0\.0\.1|'
        r'\[::1\])(:[0-9]+)? " 0;'
    ) in conf
    origins = re.search(r"MLFLOW_SERVER_CORS_ALLOWED_ORIGINS: \"([^\"]*)\"",
                        files["compose/production.yml"])[1].split(",")  # fmt: skip
    assert origins[:2] == ["https://mlflow.example.com", "https://mlflow.example.com:*"]
    assert all(origin.startswith("https://") for origin in origins), origins


def test_mlflow_verifier_conf_limits_before_it_hashes():
    text = rendered()["nginx/mlflow-verifier.conf"]
    body = text[text.index("location / {") :]
    order = [body.index(d) for d in ("limit_req zone=mlflow_auth_client burst=20 delay=1;",
                                     "limit_req zone=mlflow_auth_total burst=20 delay=1;",
                                     'auth_basic "MLflow";', "empty_gif;")]  # fmt: skip
    assert order == sorted(order)
    assert "limit_req_status 403;" in body  # "not checked", told apart from 401 "wrong"
    assert "auth_basic_user_file secrets/htpasswd;" in body
    assert "return " not in body


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
        "proxy_set_header X-Forwarded-For $remote_addr;",  # not a list the client began
        "proxy_set_header X-Forwarded-Proto $mlflow_forwarded_proto;",
        "proxy_set_header X-Forwarded-Host $host;",
        'proxy_set_header Authorization "";',
    ],
)
def test_mlflow_proxy_conf(directive: str):
    assert directive in rendered()["nginx/mlflow-proxy.conf"].splitlines()


def test_a_clone_made_with_umask_002_passes_the_drift_check(tmp_path: Path):
    """Group-writable checkouts (0775 programs, 0664 files) are not drift; a program that
    really lost its executable bit is."""
    clone = tmp_path / "clone"
    done = subprocess.run(["sh", "-c", f"umask 002 && git clone --quiet {REPO} {clone}"],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    hook = clone / ".platform" / "hooks" / "predeploy" / "10_mlflow_users.sh"
    assert hook.stat().st_mode & 0o777 == 0o775
    assert (clone / "compose" / "production.yml").stat().st_mode & 0o777 == 0o664
    check = run_configgen("render", "--check", cwd=clone)
    assert check.returncode == 0, check.stdout
    hook.chmod(0o664)
    check = run_configgen("render", "--check", cwd=clone)
    assert check.returncode == 1
    assert check.stdout.startswith(".platform/hooks/predeploy/10_mlflow_users.sh: not executable")
