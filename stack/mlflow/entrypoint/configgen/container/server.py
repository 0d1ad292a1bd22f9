"""`mlflow server` as every runner starts it: the arguments they share, and the switches for
MLflow's optional features. The local runner adds the stack's own (configgen/mlflow_server.py);
the image's entrypoint takes the rest from the container's arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

# `mlflow server --backend-store-uri` as an environment variable (click's envvar): the URI
# may hold a password, and `ps` shows every process's arguments to every user.
BACKEND_STORE_VARIABLE = "MLFLOW_BACKEND_STORE_URI"
DEFAULT_PORT = 5000
DEFAULT_WORKERS = 2


@dataclass(frozen=True)
class Feature:
    """An MLflow feature the stack leaves off unless `mlflow.features` names it: the variable
    that switches it in MLflow, and the paths nginx keeps from MLflow while it is off."""

    variable: str
    paths: tuple[str, ...] = ()


FEATURES = {
    # The AI Gateway calls LLM providers with API keys stored in MLflow, for whoever reaches it.
    "gateway": Feature(
        "MLFLOW_ENABLE_AI_GATEWAY",
        (
            "/gateway/",
            "/api/3.0/mlflow/gateway/",
            "/ajax-api/3.0/mlflow/gateway/",
            "/ajax-api/2.0/mlflow/gateway-proxy",
        ),
    ),
    # Server-side jobs (prompt optimization, scorers): an extra job runner process, writing
    # under /dev/shm, that runs work users submit.
    "jobs": Feature("MLFLOW_SERVER_ENABLE_JOB_EXECUTION"),
}

# Off whatever the stack file says. The assistant runs a shell tool on the server's host for
# its caller (MLflow keeps it to localhost clients unless told otherwise, and behind nginx no
# client is one); MLflow's usage telemetry would report to the internet.
ALWAYS_OFF = {"MLFLOW_ENABLE_REMOTE_ASSISTANT": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
ALWAYS_BLOCKED_PATHS = ("/ajax-api/3.0/mlflow/assistant/",)


def feature_switches(enabled: tuple[str, ...] | list[str]) -> dict[str, str]:
    """The variables that turn MLflow's optional features on (those `enabled` names) or off."""
    switches = {f.variable: str(name in enabled).lower() for name, f in FEATURES.items()}
    return switches | ALWAYS_OFF


def server_args(*, host: str, port: int, workers: int, socket: str | None = None) -> list[str]:
    """`mlflow server ...` arguments (after `mlflow`) that every runner passes. With `socket`,
    MLflow listens on that unix socket instead of host:port."""
    return [
        "server",
        "--host", host,
        "--port", str(port),
        *(["--uvicorn-opts", f"--uds {socket}"] if socket else []),
        "--workers", str(workers),
        # Artifacts go through the server ("proxied artifact access"): clients need only the
        # tracking URL and a user, never storage credentials.
        "--serve-artifacts",
    ]  # fmt: skip
