"""What compose/production.yml is rendered from: the production stack on one Docker host.

Services: nginx (the only one publishing a port), mlflow (built from stack/mlflow/), and,
when the stack file says `bundled`, the database (MySQL), the S3 object store and a one-shot
job that creates the artifact bucket. Secrets are the files of `configgen init`, mounted as
compose secrets and read through the `*_FILE` variables; none is ever written into the file.
"""

from __future__ import annotations

import os
from pathlib import Path

from configgen import mlflow_image, mlflow_server, nginx
from configgen.render import Output
from configgen.servicesecrets import SECRETS
from configgen.stack import Project, Stack

PACKAGE = __package__  # the templates/ folder beside this module

COMPOSE_FILE = "compose/production.yml"
# Compose reads .env from the compose file's folder, whatever the current folder is.
ENV_FILE = "compose/.env"
# Service names, which are also the host names containers reach each other by.
MLFLOW = "mlflow"
DATABASE = "database"
OBJECT_STORE = "objectstore"
DATABASE_NAME = "mlflow"
DATABASE_USER = "mlflow"
OBJECT_STORE_PORT = 9000
# The nginx image's build context, holding its rendered configuration.
NGINX_FOLDER = "nginx"
NGINX_ENTRYPOINT = "docker-entrypoint.sh"
NGINX_CONF_DIR = "/etc/nginx"
# Where the users folder (secrets/nginx on the host) is mounted, read-only, in the image.
USERS_FOLDER = f"{NGINX_CONF_DIR}/{nginx.SECRETS_FOLDER}"
AUTH_SOCKET_DIR = "/run/mlflow-auth"
HTTP_PORT = 8080  # inside the nginx container; compose publishes proxy.port here
HTTPS_PORT = 8443  # and tls.port here
# The compose secrets (names, not values) holding the certificate and its key.
TLS_CERTIFICATE_SECRET = "tls_certificate"  # noqa: S105
TLS_KEY_SECRET = "tls_key"  # noqa: S105


def _relative(path: Path, project: Project) -> str:
    """`path` as compose resolves it: relative to the compose file's folder."""
    return Path(os.path.relpath(path, (project.root / COMPOSE_FILE).parent)).as_posix()


def context(project: Project) -> dict[str, object]:
    stack = project.stack
    bundled_store = stack.mlflow.bundled_artifacts
    artifacts = (
        f"s3://{stack.object_store.bucket}/artifacts"
        if bundled_store
        else stack.mlflow.artifact_destination
    )
    endpoint = (
        f"http://{OBJECT_STORE}:{OBJECT_STORE_PORT}"
        if bundled_store
        else stack.object_store.endpoint
    )
    secrets = {s.file: _relative(project.secrets_dir / s.file, project) for s in SECRETS}
    if stack.tls.enabled:
        secrets[TLS_CERTIFICATE_SECRET] = _relative(project.tls_certificate, project)
        secrets[TLS_KEY_SECRET] = _relative(project.tls_key, project)
    return {
        "stack": stack,
        "port": stack.proxy.port,
        "nginx_build": _relative(project.root / NGINX_FOLDER, project),
        "nginx_secrets": _relative(project.htpasswd.parent, project),
        "nginx_secrets_target": USERS_FOLDER,
        "auth_socket_dir": AUTH_SOCKET_DIR,
        "mlflow_build": _relative(project.root / mlflow_image.FOLDER, project),
        "mlflow_image": stack.mlflow_image,
        "bucket_module": mlflow_image.BUCKET_MODULE,
        "secrets": secrets,
        "tls": stack.tls.enabled,
        "http_port": HTTP_PORT,
        "https_port": HTTPS_PORT,
        "tls_secrets": (TLS_CERTIFICATE_SECRET, TLS_KEY_SECRET),
        "bundled_database": stack.mlflow.bundled_backend,
        "bundled_store": bundled_store,
        "database": DATABASE,
        "database_name": DATABASE_NAME,
        "database_user": DATABASE_USER,
        "backend_uri": stack.mlflow.backend_store,
        "object_store": OBJECT_STORE,
        "object_store_port": OBJECT_STORE_PORT,
        "artifacts": artifacts,
        "s3_endpoint": endpoint,
        "mlflow": MLFLOW,
        "allowed_hosts": ",".join(mlflow_server.allowed_hosts(stack, internal=(MLFLOW,))),
        "cors_origins": ",".join(mlflow_server.cors_origins(stack)),
        "features": mlflow_server.server_environment(stack),
    }


def runtime(stack: Stack) -> nginx.Runtime:
    """The nginx container of compose/production.yml: logs to Docker, MLflow by service name."""
    return nginx.Runtime(
        purpose="the nginx container of compose/production.yml",
        verifier_purpose="the auth-verifier container of compose/production.yml",
        listen=str(HTTP_PORT),
        upstream=f"{MLFLOW}:{stack.mlflow.port}",
        pid="/run/nginx.pid",
        error_log="/dev/stderr",
        access_log="/dev/stdout",
        # A volume shared by the nginx and auth-verifier containers, and nothing else.
        auth_listen=f"unix:{AUTH_SOCKET_DIR}/auth.sock",
        # The verifier runs unprivileged (nginx/docker-entrypoint.sh), its master too.
        verifier_pid="/run/nginx-verifier.pid",
        # compose mounts a tmpfs on /var/lib/nginx (Debian's nginx keeps its temp files there)
        auth_cache_dir="/var/lib/nginx/mlflow-auth",
        auth_log="/dev/stdout",
        # Docker's embedded DNS; names are re-resolved, so a re-created MLflow container is found.
        resolver="127.0.0.11",
        user=f"{nginx.WORKERS} {nginx.WORKERS}",
        # compose secrets: root-only files that nginx's master reads before dropping privileges
        https=nginx.Https(
            str(HTTPS_PORT),
            f"/run/secrets/{TLS_CERTIFICATE_SECRET}",
            f"/run/secrets/{TLS_KEY_SECRET}",
            stack.tls.port,
        )
        if stack.tls.enabled
        else None,
    )


def nginx_image(stack: Stack) -> list[Output]:
    """The nginx image's build context: its Dockerfile, entrypoint and configuration."""
    values = {
        "confs": [nginx.MAIN_CONF, nginx.VERIFIER_CONF, *nginx.FRAGMENTS],
        "entrypoint": NGINX_ENTRYPOINT,
        "http_port": HTTP_PORT,
        "auth_socket_dir": AUTH_SOCKET_DIR,
        "users_folder": USERS_FOLDER,
        "htpasswd": f"{NGINX_CONF_DIR}/{nginx.htpasswd_path(stack)}",
        "workers": nginx.WORKERS,
    }
    return [
        *nginx.outputs(stack, runtime(stack), NGINX_FOLDER),
        Output(f"{NGINX_FOLDER}/Dockerfile", "nginx/Dockerfile.j2", values, PACKAGE),
        Output(
            f"{NGINX_FOLDER}/{NGINX_ENTRYPOINT}",
            "nginx/docker-entrypoint.sh.j2",
            values,
            PACKAGE,
            program=True,
        ),
    ]


def outputs(project: Project) -> list[Output]:
    """Every file of the compose target, relative to the project folder."""
    return [
        *nginx_image(project.stack),
        *mlflow_image.outputs(project.stack),
        Output(COMPOSE_FILE, "production.yml.j2", context(project), PACKAGE),
        Output(ENV_FILE, "env.j2", {"name": project.stack.name}, PACKAGE),
    ]
