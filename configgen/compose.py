"""What compose/production.yml is rendered from: the production stack on one Docker host.

Services: nginx (the only one publishing a port), mlflow (built from stack/mlflow/), and,
when the stack file says `bundled`, the database (MySQL), the S3 object store and a one-shot
job that creates the artifact bucket. Secrets are the files of `configgen init`, mounted as
compose secrets and read through the `*_FILE` variables; none is ever written into the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from configgen import mlflow_server, nginx, reload
from configgen.servicesecrets import SECRETS
from configgen.stack import Project

if TYPE_CHECKING:
    import docker

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


def _relative(path: Path, project: Project) -> str:
    """`path` as compose resolves it: relative to the compose file's folder."""
    return Path(os.path.relpath(path, (project.root / COMPOSE_FILE).parent)).as_posix()


def context(project: Project) -> dict[str, object]:
    stack = project.stack
    bundled_database = stack.mlflow.backend_store == "bundled"
    bundled_store = stack.mlflow.artifact_destination == "bundled"
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
        secrets[nginx.TLS_CERTIFICATE_SECRET] = _relative(project.tls_certificate, project)
        secrets[nginx.TLS_KEY_SECRET] = _relative(project.tls_key, project)
    return {
        "stack": stack,
        "port": stack.proxy.port,
        "nginx_build": _relative(project.root / "nginx", project),
        "nginx_secrets": _relative(project.htpasswd.parent, project),
        "nginx_secrets_target": f"/etc/nginx/{nginx.SECRETS_FOLDER}",
        "auth_socket_dir": nginx.COMPOSE_AUTH_SOCKET_DIR,
        "mlflow_build": _relative(project.root, project),
        "mlflow_image": stack.mlflow_image,
        "secrets": secrets,
        "tls": stack.tls.enabled,
        "http_port": nginx.COMPOSE_HTTP_PORT,
        "https_port": nginx.COMPOSE_HTTPS_PORT,
        "tls_secrets": (nginx.TLS_CERTIFICATE_SECRET, nginx.TLS_KEY_SECRET),
        "bundled_database": bundled_database,
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


def _workers(container: docker.models.containers.Container) -> set[str]:
    listing = container.top(ps_args="-eo pid,args")
    return {p[0] for p in listing["Processes"] if "worker process" in p[-1]}


def reload_nginx(project: Project) -> list[str]:
    """SIGHUP to the running nginx containers of this stack's compose project, through the
    Docker Engine API; returns their names (none when Docker or the stack is not running)."""
    import docker
    from docker.errors import DockerException

    try:
        client = docker.from_env()
        containers = client.containers.list(
            filters={
                "label": [
                    f"com.docker.compose.project={project.stack.name}",
                    "com.docker.compose.service=nginx",
                ]
            }
        )
        for container in containers:
            reload.reload_and_wait(
                lambda c=container: _workers(c), lambda c=container: c.kill(signal="SIGHUP")
            )
    except DockerException:
        return []
    return [c.name for c in containers]
