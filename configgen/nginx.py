"""What the nginx templates are filled with.

Three fragments are shared unchanged by every runner (compose, local, Elastic Beanstalk):
`mlflow-http.conf` (http level), `mlflow-server.conf` (the MLflow locations and their
authentication, server level) and `mlflow-proxy.conf` (proxy settings, included by each
location). A runner's own main configuration includes them and defines `$mlflow_upstream`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from configgen.stack import Stack

# Relative to nginx's configuration folder, where each runner puts the folder that holds the
# htpasswd file (compose: a read-only mount; local: a symlink; Elastic Beanstalk: a hook).
SECRETS_FOLDER = "secrets"


@dataclass(frozen=True)
class Runtime:
    """Where one runner's nginx listens, logs and finds MLflow."""

    purpose: str  # completes "nginx's main configuration for ..."
    listen: str
    upstream: str  # host:port, or the name of an upstream block
    pid: str
    error_log: str
    access_log: str
    user: str | None = None  # the workers' user, when started as root
    resolver: str | None = None  # for an upstream host name that may change address
    temp_dir: str | None = None  # for an nginx that cannot write its compiled-in paths


def compose_runtime(stack: Stack) -> Runtime:
    """The nginx container of compose/production.yml: logs to Docker, MLflow by service name."""
    return Runtime(
        purpose="the nginx container of compose/production.yml",
        listen="8080",
        upstream=f"mlflow:{stack.mlflow.port}",
        pid="/run/nginx.pid",
        error_log="/dev/stderr",
        access_log="/dev/stdout",
        # Docker's embedded DNS; names are re-resolved, so a re-created MLflow container is found.
        resolver="127.0.0.11",
    )


def local_runtime(conf_dir: Path, log_dir: Path, listen: str, upstream: str) -> Runtime:
    """An nginx started on this machine: pid and temp files in `conf_dir`, logs in `log_dir`.

    Started as root, its workers would otherwise drop to `nobody` and could not read the 0640
    htpasswd file; they keep the identity of whoever started it, as with any other user.
    """
    return Runtime(
        user="root" if os.geteuid() == 0 else None,
        purpose="a local nginx started by `configgen up`",
        listen=listen,
        upstream=upstream,
        pid=str(conf_dir / "nginx.pid"),
        error_log=str(log_dir / "nginx-error.log"),
        access_log=str(log_dir / "nginx-access.log"),
        temp_dir=str(conf_dir / "tmp"),
    )


def htpasswd_path(stack: Stack) -> str:
    """The htpasswd file as nginx sees it, relative to its configuration folder."""
    return f"{SECRETS_FOLDER}/{PurePosixPath(stack.auth.htpasswd).name}"


def fragment_context(stack: Stack) -> dict[str, object]:
    """Values for the shared fragments."""
    return {
        "realm": stack.auth.realm,
        "htpasswd": htpasswd_path(stack),
        "max_body_size": stack.proxy.max_body_size,
        "timeout": stack.proxy.timeout_seconds,
    }


def main_context(stack: Stack, runtime: Runtime) -> dict[str, object]:
    """Values for a runner's main configuration (`nginx.conf`)."""
    return {"runtime": runtime, "server_names": " ".join(stack.hosts)}
