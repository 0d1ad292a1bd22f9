"""The platform image's build context, rendered into stack/platform/: its Dockerfile, nginx's
configuration (the shared fragments, with `$PORT` and the run folder left for the container's
PID 1 to fill in, configgen/container/platform.py), settings.json (what MLflow accepts, from
the stack file) and configgen's container code, copied as it is.

Heroku builds an image with the Dockerfile's own folder as the build context: everything the
Dockerfile copies is in this folder, and the tests build it the same way.
"""

from __future__ import annotations

import json

from configgen import mlflow_image, mlflow_server, nginx
from configgen.container.server import feature_switches
from configgen.render import Output
from configgen.stack import Project, Stack

PACKAGE = __package__
FOLDER = "stack/platform"
HOME = "/opt/mlflow-platform"  # configgen.container.platform.HOME
RUN_DIR = "${MLFLOW_RUN_DIR}"  # filled in at start, as ${PORT} is
COMMAND = "mlflow-platform"
# The container code: the MLflow image's, with PID 1 and what it needs.
CODE_FILES = (
    *mlflow_image.CODE_FILES,
    "fileio.py",
    "supervisor.py",
    "container/platform.py",
    "container/platform_env.py",
    "container/users.py",
)


def runtime() -> nginx.Runtime:
    return nginx.Runtime(
        purpose="the platform image (Heroku, AWS App Runner), on $PORT behind the router",
        verifier_purpose="the password checks of the platform image",
        listen="${PORT}",
        upstream="mlflow_server",
        mlflow_socket=f"{RUN_DIR}/mlflow.sock",
        pid=f"{RUN_DIR}/nginx/nginx.pid",
        error_log="stderr",
        access_log="/dev/stdout",
        auth_listen=f"unix:{RUN_DIR}/auth.sock",
        verifier_pid=f"{RUN_DIR}/nginx/nginx-verifier.pid",
        auth_cache_dir=f"{RUN_DIR}/auth-cache",
        auth_log="/dev/stdout",
        temp_dir=RUN_DIR,
        router=True,
    )


def settings(stack: Stack) -> dict[str, object]:
    """What PID 1 reads from settings.json: the Host headers MLflow accepts (the platforms'
    domains among them) and the browser origins its CORS lets in (MLFLOW_HOSTS adds to both),
    its feature switches, and the names of nginx's files."""
    return {
        "allowed_hosts": mlflow_server.allowed_hosts(stack, stack.platform.hosts),
        # Not the platforms' domains: every other app on *.herokuapp.com would be a trusted
        # origin for the user's browser login. A page calling its own host is same-origin.
        "cors_origins": mlflow_server.cors_origins(stack),
        "switches": feature_switches(stack.mlflow.features),
        "main_conf": nginx.MAIN_CONF,
        "verifier_conf": nginx.VERIFIER_CONF,
        # Where the shared fragments look for the users, relative to nginx's folder.
        "users_file": nginx.htpasswd_path(stack),
        "generation_suffix": nginx.GENERATION_SUFFIX,
    }


def outputs(project: Project) -> list[Output]:
    stack = project.stack
    values = {
        "version": stack.mlflow.version,
        "image": stack.platform_image,
        "folder": FOLDER,
        "certs": mlflow_image.CERTS,
        "code": mlflow_image.CODE,
        "code_target": mlflow_image.CODE_TARGET,
        "home": HOME,
        "command": COMMAND,
        "module": "configgen.container.platform",
        "image_name": "the platform image",
        "bundled": False,
    }
    text = json.dumps(settings(stack), indent=2) + "\n"
    return [
        Output(f"{FOLDER}/Dockerfile", "Dockerfile.j2", values, PACKAGE),
        Output(f"{FOLDER}/.dockerignore", "mlflow/dockerignore.j2", values),
        Output(f"{FOLDER}/{mlflow_image.CERTS}/README.md", "mlflow/certs-README.md.j2", values),
        Output(f"{FOLDER}/settings.json", "settings.json.j2", {"text": text}, PACKAGE),
        *nginx.outputs(stack, runtime(), f"{FOLDER}/nginx"),
        *(Output(f"{FOLDER}/{mlflow_image.CODE}/configgen/{name}", copy=name)
          for name in CODE_FILES),
    ]  # fmt: skip
