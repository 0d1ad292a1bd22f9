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


# What `mlflow server` hands its uvicorn child, for a runner that starts uvicorn itself (the
# platform image: the CLI parent costs about 200 MB only to wait). These names are MLflow's
# private contract between its CLI and its app; tests/test_platform.py compares them with what
# `mlflow server` really passes, so an MLflow upgrade that changes them fails loudly.
APP = "mlflow.server.fastapi_app:app"
PROXIED_ARTIFACT_ROOT = "mlflow-artifacts:/"


def uvicorn_environment(*, backend_uri: str, artifacts_destination: str, boot_id: str,
                        allowed_hosts: str, cors_origins: str) -> dict[str, str]:  # fmt: skip
    """The variables `mlflow server --serve-artifacts` sets for its app (mlflow.server's
    _run_server and the CLI before it), for a default (uvicorn, no --app-name) server."""
    return {
        "_MLFLOW_SERVER_FILE_STORE": backend_uri,
        "_MLFLOW_SERVER_REGISTRY_STORE": backend_uri,
        "_MLFLOW_SERVER_ARTIFACT_ROOT": PROXIED_ARTIFACT_ROOT,
        "_MLFLOW_SERVER_SERVE_ARTIFACTS": "true",
        "_MLFLOW_SERVER_ARTIFACT_DESTINATION": artifacts_destination,
        "_MLFLOW_SERVER_BOOT_ID": boot_id,
        "_MLFLOW_IN_JOB_EXECUTOR": "false",
        "_MLFLOW_SGI_NAME": "uvicorn",
        "MLFLOW_SERVER_ALLOWED_HOSTS": allowed_hosts,
        "MLFLOW_SERVER_CORS_ALLOWED_ORIGINS": cors_origins,
        "MLFLOW_ENABLE_WORKSPACES": "false",
    }


def uvicorn_command(python: str, log_config: str, *, socket: str, workers: int) -> list[str]:
    """The uvicorn command `mlflow server --uvicorn-opts "--uds SOCKET"` runs, with MLflow's
    own log configuration (`log_config`: mlflow/server/uvicorn_log_config.yaml)."""
    return [
        python, "-m", "uvicorn", "--uds", socket, "--log-config", log_config,
        "--host", "127.0.0.1", "--port", str(DEFAULT_PORT), "--workers", str(workers), APP,
    ]  # fmt: skip
