"""What the nginx templates are filled with.

Five fragments are shared unchanged by every runner (compose, local, Elastic Beanstalk):
`mlflow-http.conf` (http level), `mlflow-server.conf` (the MLflow locations and their
authentication, server level), `mlflow-health.conf` (the one open location, also in the
plain-HTTP server that redirects), `mlflow-proxy.conf` (proxy settings, included by each
authenticated location) and `mlflow-verifier.conf` (the password checks, see docs/auth.md). A
runner's own main configurations include them and supply what differs by runner
(runner-http.j2): where MLflow is, how clients reach the stack, the verifier's address and the
auth cache's memory-backed folder.

The local and compose runners start nginx twice: `nginx.conf` serves MLflow,
`nginx-verifier.conf` checks passwords. bcrypt blocks the nginx worker that runs it for about
0.25 s; in a process of its own it never stalls a worker that is serving requests (docs/auth.md
has the measurements). On Elastic Beanstalk, which owns the host's nginx, the verifier is a
server of that nginx instead (configgen/targets/elastic_beanstalk/).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from configgen import mlflow_server
from configgen.render import Output
from configgen.stack import Stack

# Relative to nginx's configuration folder, where each runner puts the folder that holds the
# htpasswd file (compose: a read-only mount; local: a symlink; Elastic Beanstalk: a hook).
SECRETS_FOLDER = "secrets"
# Written beside the htpasswd file on every change (configgen/htpasswd.py): part of the auth
# cache key, so a reload after a change makes every cached verification obsolete.
GENERATION_SUFFIX = ".generation"
# The workers' user and group wherever configgen picks them: the compose image's nginx, and a
# local nginx started as root. Debian's web server identity (uid and gid 33), never root.
WORKERS = "www-data"
WORKERS_GID = 33
MAIN_CONF = "nginx.conf"
VERIFIER_CONF = "nginx-verifier.conf"
FRAGMENTS = (
    "mlflow-http.conf",
    "mlflow-server.conf",
    "mlflow-health.conf",
    "mlflow-proxy.conf",
    "mlflow-verifier.conf",
)


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
    user: str | None = None  # the workers' user (and group), when started as root
    verifier_user: str | None = None  # the same for nginx-verifier.conf
    resolver: str | None = None  # for an upstream host name that may change address
    temp_dir: str | None = None  # for an nginx that cannot write its compiled-in paths
    https: Https | None = None  # None: plain HTTP on `listen` only
    mlflow_socket: str | None = None  # MLflow's unix socket; `upstream` then names it
    # Behind a load balancer that terminates TLS and sets X-Forwarded-Proto (Elastic
    # Beanstalk's), and whether its plain-HTTP requests go to HTTPS.
    behind_load_balancer: bool = False
    redirect_http: bool = False
    # Behind a platform's router (Heroku's, App Runner's), the only peer a container has: the
    # last X-Forwarded-For address is the client's; X-Forwarded-Proto http goes to HTTPS.
    router: bool = False

    @property
    def auth_socket(self) -> str:
        """The verifier's unix socket file."""
        return self.auth_listen.removeprefix("unix:")


def htpasswd_path(stack: Stack) -> str:
    """The htpasswd file as nginx sees it, relative to its configuration folder."""
    return f"{SECRETS_FOLDER}/{PurePosixPath(stack.auth.htpasswd).name}"


def host_pattern(names: list[str]) -> str:
    """A regular expression (alternatives, no anchors) matching exactly these host names; a
    leading `*.` stands for one label, as in a certificate."""
    return "|".join(
        r"[^.]+\." + re.escape(n.removeprefix("*.")) if n.startswith("*.") else re.escape(n)
        for n in names
    )


def own_hosts(stack: Stack) -> list[str]:
    """The hosts whose https:// pages are the stack's own, on every runner (so the shared
    fragments agree): those of mlflow_server.own_hosts() and the Elastic Beanstalk CNAME."""
    cname = stack.elastic_beanstalk.cname
    return mlflow_server.own_hosts(stack, (cname,) if cname else ())


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
        "disabled_prefixes": mlflow_server.blocked_paths(stack),
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
        "auth_stale_seconds": stack.auth.stale_seconds,
        "own_hosts": host_pattern(own_hosts(stack)),
    }


def outputs(stack: Stack, runtime: Runtime, folder: str) -> list[Output]:
    """nginx's two main configurations for `runtime` and the shared fragments, under `folder`."""
    fragment = fragment_context(stack)
    if runtime.router:
        fragment["trusted_proxies"] = ()  # runner-http.j2 trusts the router instead
    main = main_context(stack, runtime)
    return [
        Output(f"{folder}/{MAIN_CONF}", "nginx/nginx.conf.j2", main),
        Output(f"{folder}/{VERIFIER_CONF}", "nginx/nginx-verifier.conf.j2", main),
        *(Output(f"{folder}/{name}", f"nginx/{name}.j2", fragment) for name in FRAGMENTS),
    ]
