"""How `mlflow server` is started: its arguments and environment, the same for every runner.

MLflow 3.5+ answers 403 to a Host header it does not know ("Invalid Host header - possible DNS
rebinding attack detected"), and `--allowed-hosts` replaces its default list instead of
extending it. So the list is derived here from the stack's public host names plus the local
names that health checks and local clients use.
"""

from __future__ import annotations

from collections.abc import Iterable

from configgen.container.server import ALWAYS_BLOCKED_PATHS, FEATURES, feature_switches
from configgen.container.server import server_args as shared_server_args
from configgen.stack import Stack

# Names a client on the same machine or in the same container uses.
LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")


def server_environment(stack: Stack) -> dict[str, str]:
    """The variables that turn MLflow's optional features on or off for `mlflow server`."""
    return feature_switches(stack.mlflow.features)


def blocked_paths(stack: Stack) -> list[str]:
    """Path prefixes nginx answers 404 to: those of the features that are off."""
    off = [f.paths for name, f in FEATURES.items() if name not in stack.mlflow.features]
    return [*(path for paths in off for path in paths), *ALWAYS_BLOCKED_PATHS]


def allowed_hosts(stack: Stack, internal: Iterable[str] = ()) -> list[str]:
    """Host header patterns MLflow accepts: each name bare (nginx passes `$host`, without the
    port) and with any port (a client talking to MLflow directly). `internal` adds names such
    as a compose service name."""
    names = [*stack.hosts, *(n for n in LOCAL_HOSTS if n not in stack.hosts), *internal]
    # fnmatch reads "[" as a character class: "[[]" matches a literal "[".
    return [p for n in names for p in (n, f"{n}:*".replace("[", "[[]", 1))]


def own_hosts(stack: Stack, hosts: Iterable[str] = ()) -> list[str]:
    """The host names whose https:// pages may call the API from a browser: the stack's own,
    the local names, and `hosts` (a target's own, such as an Elastic Beanstalk CNAME)."""
    names = [*stack.hosts, *LOCAL_HOSTS, *hosts]
    return list(dict.fromkeys(names))


def cors_origins(stack: Stack, hosts: Iterable[str] = ()) -> list[str]:
    """Browser origins MLflow lets call the API with the user's login: https:// pages of
    own_hosts() only, on any port. nginx refuses every other site's requests before they reach
    MLflow ($mlflow_foreign_origin, runner-http.j2), the http://localhost pages MLflow always
    allows included."""
    return [
        f"https://{h}{port}".replace("[", "[[]", 1) if port else f"https://{h}"
        for h in own_hosts(stack, hosts)
        for port in ("", ":*")
    ]


def server_args(
    stack: Stack,
    *,
    host: str,
    port: int,
    artifacts_destination: str,
    internal_hosts: Iterable[str] = (),
    socket: str | None = None,
) -> list[str]:
    """`mlflow server ...` arguments (after `mlflow`) for `stack`: the shared ones and the
    stack's own. The backend store URI goes in the environment (BACKEND_STORE_VARIABLE)."""
    return [
        *shared_server_args(host=host, port=port, workers=stack.mlflow.workers, socket=socket),
        "--artifacts-destination", artifacts_destination,
        "--allowed-hosts", ",".join(allowed_hosts(stack, internal_hosts)),
        "--cors-allowed-origins", ",".join(cors_origins(stack)),
        *stack.mlflow.extra_args,
    ]  # fmt: skip
