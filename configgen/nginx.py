"""What the nginx templates are filled with.

Four fragments are shared unchanged by every runner (compose, local, Elastic Beanstalk):
`mlflow-http.conf` (http level), `mlflow-server.conf` (the MLflow locations and their
authentication, server level), `mlflow-proxy.conf` (proxy settings, included by each
location) and `mlflow-verifier.conf` (the password checks, see docs/auth.md). A runner's own
main configurations include them and supply what differs by runner: `$mlflow_upstream`, the
verifier's unix socket and the auth cache's memory-backed folder.

The local and compose runners start nginx twice: `nginx.conf` serves MLflow,
`nginx-verifier.conf` checks passwords. bcrypt blocks the nginx worker that runs it for about
0.25 s; in a process of its own it never stalls a worker that is serving requests (docs/auth.md
has the measurements). On Elastic Beanstalk, which owns the host's nginx, the verifier is a
server of that nginx instead (configgen/eb.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from configgen.stack import Stack

# Relative to nginx's configuration folder, where each runner puts the folder that holds the
# htpasswd file (compose: a read-only mount; local: a symlink; Elastic Beanstalk: a hook).
SECRETS_FOLDER = "secrets"
# Written beside the htpasswd file on every change (configgen/htpasswd.py): part of the auth
# cache key, so a reload after a change makes every cached verification obsolete.
GENERATION_SUFFIX = ".generation"
MAIN_CONF = "nginx.conf"
VERIFIER_CONF = "nginx-verifier.conf"
COMPOSE_AUTH_SOCKET_DIR = "/run/mlflow-auth"
COMPOSE_HTTP_PORT = 8080  # inside the nginx container; compose publishes proxy.port here
COMPOSE_HTTPS_PORT = 8443  # and tls.port here
# The compose secrets (names, not values) holding the certificate and its key.
TLS_CERTIFICATE_SECRET = "tls_certificate"  # noqa: S105
TLS_KEY_SECRET = "tls_key"  # noqa: S105


@dataclass(frozen=True)
class Https:
    """Where nginx serves HTTPS (tls.mode other than off), with which certificate and key, and
    the port clients reach it on (for the redirect from plain HTTP, which keeps only /health)."""

    listen: str
    certificate: str
    key: str
    port: int

    @property
    def port_suffix(self) -> str:
        """The port as a URL writes it after the host: nothing for 443."""
        return "" if self.port == 443 else f":{self.port}"


@dataclass(frozen=True)
class Runtime:
    """Where one runner's nginx listens, logs and finds MLflow."""

    purpose: str  # completes "nginx's main configuration for ..."
    verifier_purpose: str  # the same, for nginx-verifier.conf
    listen: str
    upstream: str  # host:port, or the name of an upstream block
    pid: str
    error_log: str
    access_log: str
    auth_listen: str  # the verifier's address, as `listen` takes it: unix:PATH or ADDR:PORT
    verifier_pid: str
    auth_cache_dir: str  # verified credentials: must be on tmpfs (they include the password)
    auth_log: str  # one line per bcrypt check (cache miss), with its result
    user: str | None = None  # the workers' user, when started as root
    resolver: str | None = None  # for an upstream host name that may change address
    temp_dir: str | None = None  # for an nginx that cannot write its compiled-in paths
    https: Https | None = None  # None: plain HTTP on `listen` only

    @property
    def auth_socket(self) -> str:
        """The verifier's unix socket file."""
        return self.auth_listen.removeprefix("unix:")


def compose_runtime(stack: Stack) -> Runtime:
    """The nginx container of compose/production.yml: logs to Docker, MLflow by service name."""
    return Runtime(
        purpose="the nginx container of compose/production.yml",
        verifier_purpose="the auth-verifier container of compose/production.yml",
        listen=str(COMPOSE_HTTP_PORT),
        upstream=f"mlflow:{stack.mlflow.port}",
        pid="/run/nginx.pid",
        error_log="/dev/stderr",
        access_log="/dev/stdout",
        # A volume shared by the nginx and auth-verifier containers, and nothing else.
        auth_listen=f"unix:{COMPOSE_AUTH_SOCKET_DIR}/auth.sock",
        verifier_pid="/run/nginx-verifier.pid",
        # compose mounts a tmpfs on /var/lib/nginx (Debian's nginx keeps its temp files there)
        auth_cache_dir="/var/lib/nginx/mlflow-auth",
        auth_log="/dev/stdout",
        # Docker's embedded DNS; names are re-resolved, so a re-created MLflow container is found.
        resolver="127.0.0.11",
        # compose secrets: root-only files that nginx's master reads before dropping privileges
        https=Https(
            str(COMPOSE_HTTPS_PORT),
            f"/run/secrets/{TLS_CERTIFICATE_SECRET}",
            f"/run/secrets/{TLS_KEY_SECRET}",
            stack.tls.port,
        )
        if stack.tls.enabled
        else None,
    )


def local_runtime(
    conf_dir: Path,
    log_dir: Path,
    run_dir: Path,
    listen: str,
    upstream: str,
    https: Https | None = None,
) -> Runtime:
    """An nginx started on this machine: pid and temp files in `conf_dir`, logs in `log_dir`,
    the verifier's socket and the auth cache in `run_dir` (a private folder on tmpfs).

    Started as root, its workers would otherwise drop to `nobody` and could not read the 0640
    htpasswd file; they keep the identity of whoever started it, as with any other user.
    """
    return Runtime(
        user="root" if os.geteuid() == 0 else None,
        purpose="a local nginx started by `configgen up`",
        verifier_purpose="the password checks of a local nginx started by `configgen up`",
        listen=listen,
        upstream=upstream,
        pid=str(conf_dir / "nginx.pid"),
        error_log=str(log_dir / "nginx-error.log"),
        access_log=str(log_dir / "nginx-access.log"),
        auth_listen=f"unix:{run_dir / 'auth.sock'}",
        verifier_pid=str(conf_dir / "nginx-verifier.pid"),
        auth_cache_dir=str(run_dir / "auth-cache"),
        auth_log=str(log_dir / "nginx-auth.log"),
        temp_dir=str(conf_dir / "tmp"),
        https=https,
    )


def htpasswd_path(stack: Stack) -> str:
    """The htpasswd file as nginx sees it, relative to its configuration folder."""
    return f"{SECRETS_FOLDER}/{PurePosixPath(stack.auth.htpasswd).name}"


def fragment_context(stack: Stack) -> dict[str, object]:
    """Values for the shared fragments."""
    return {
        "realm": stack.auth.realm,
        "htpasswd": htpasswd_path(stack),
        "generation": f"{SECRETS_FOLDER}/*{GENERATION_SUFFIX}",
        "max_body_size": stack.proxy.max_body_size,
        "timeout": stack.proxy.timeout_seconds,
        "auth": stack.auth,
        "trusted_proxies": stack.proxy.trusted_proxies,
    }


# TLS 1.2's forward-secret AEAD suites (TLS 1.3 has only such suites, and nginx keeps
# OpenSSL's list for it).
TLS_CIPHERS = ":".join([
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
])  # fmt: skip


def main_context(stack: Stack, runtime: Runtime) -> dict[str, object]:
    """Values for a runner's main configuration (`nginx.conf`)."""
    return {
        "runtime": runtime,
        "tls_ciphers": TLS_CIPHERS,
        "server_names": " ".join(stack.hosts),
        "auth_cache_seconds": stack.auth.cache_seconds,
    }


def local_argv(nginx_bin: str, conf_dir: Path, conf: str, error_log: Path) -> list[str]:
    """The command that runs one of the two nginx of `conf_dir` in the foreground."""
    return [nginx_bin, "-p", f"{conf_dir}/", "-c", str(conf_dir / conf),
            "-e", str(error_log), "-g", "daemon off;"]  # fmt: skip
