"""How `mlflow server` is started: its arguments and environment, the same for every runner.

MLflow 3.5+ answers 403 to a Host header it does not know ("Invalid Host header - possible DNS
rebinding attack detected"), and `--allowed-hosts` replaces its default list instead of
extending it. So the list is derived here from the stack's public host names plus the local
names that health checks and local clients use.
"""

from __future__ import annotations

from collections.abc import Iterable

from configgen.stack import Stack

# Names a client on the same machine or in the same container uses.
LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")

# The job runner starts an extra process that writes under /dev/shm; the stack does not use it.
SERVER_ENVIRONMENT = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def allowed_hosts(stack: Stack, internal: Iterable[str] = ()) -> list[str]:
    """Host header patterns MLflow accepts: each name bare (nginx passes `$host`, without the
    port) and with any port (a client talking to MLflow directly). `internal` adds names such
    as a compose service name."""
    names = [*stack.hosts, *(n for n in LOCAL_HOSTS if n not in stack.hosts), *internal]
    # fnmatch reads "[" as a character class: "[[]" matches a literal "[".
    return [p for n in names for p in (n, f"{n}:*".replace("[", "[[]", 1))]


def cors_origins(stack: Stack, hosts: Iterable[str] = ()) -> list[str]:
    """Browser origins allowed to call the API: the stack's own pages (and `hosts`), over HTTP
    or HTTPS. (MLflow always allows localhost origins.)"""
    names = [*stack.hosts, *(h for h in hosts if h not in stack.hosts)]
    return [
        f"{scheme}://{h}{port}"
        for h in names
        for scheme in ("https", "http")
        for port in ("", ":*")
    ]


def server_args(
    stack: Stack,
    *,
    host: str,
    port: int,
    backend_uri: str,
    artifacts_destination: str,
    internal_hosts: Iterable[str] = (),
) -> list[str]:
    """`mlflow server ...` arguments (after `mlflow`)."""
    return [
        "server",
        "--host", host,
        "--port", str(port),
        "--workers", str(stack.mlflow.workers),
        "--backend-store-uri", backend_uri,
        # Artifacts go through the server ("proxied artifact access"): clients need only the
        # tracking URL and a user, never storage credentials.
        "--serve-artifacts",
        "--artifacts-destination", artifacts_destination,
        "--allowed-hosts", ",".join(allowed_hosts(stack, internal_hosts)),
        "--cors-allowed-origins", ",".join(cors_origins(stack)),
        *stack.mlflow.extra_args,
    ]  # fmt: skip
