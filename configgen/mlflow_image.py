"""The MLflow server image's build context, rendered into stack/mlflow/ for compose and
zipped into the Elastic Beanstalk bundle: its Dockerfile, the CA certificates folder, and
configgen's container code (configgen/container/) copied as it is, so that building the image
needs neither configgen's source tree nor its dependencies.
"""

from __future__ import annotations

from configgen.render import Output
from configgen.stack import Stack

FOLDER = "stack/mlflow"
CERTS = "certs"  # *.crt here go into the image's trust store (git-ignored)
CODE = "entrypoint"  # configgen's container code, importable from CODE_TARGET
CODE_TARGET = "/opt/mlflow-entrypoint"
ENTRYPOINT_MODULE = "configgen.container.entrypoint"
BUCKET_MODULE = "configgen.container.bucket"  # the compose stack's one-shot bucket job
# What the container code imports from configgen: itself and two stdlib-only modules
# (tests/test_mlflow_image.py imports it with nothing else on the path).
CODE_FILES = (
    "__init__.py",
    "errors.py",
    "envvars.py",
    "container/__init__.py",
    "container/bucket.py",
    "container/database_url.py",
    "container/entrypoint.py",
    "container/migrate.py",
    "container/server.py",
    "container/stores.py",
)


def outputs(stack: Stack, folder: str = FOLDER) -> list[Output]:
    """The build context under `folder` (the bundle puts it at the zip's root: "")."""
    prefix = f"{folder}/" if folder else ""
    values = {
        "version": stack.mlflow.version,
        "port": stack.mlflow.port,
        "image": stack.mlflow_image,
        "folder": folder or ".",
        "certs": CERTS,
        "code": CODE,
        "code_target": CODE_TARGET,
        "entrypoint_module": ENTRYPOINT_MODULE,
        "image_name": "the MLflow image",
        "bundled": True,  # the Elastic Beanstalk bundle carries this folder
    }
    return [
        Output(f"{prefix}Dockerfile", "mlflow/Dockerfile.j2", values),
        Output(f"{prefix}.dockerignore", "mlflow/dockerignore.j2", values),
        Output(f"{prefix}{CERTS}/README.md", "mlflow/certs-README.md.j2", values),
        *(Output(f"{prefix}{CODE}/configgen/{name}", copy=name) for name in CODE_FILES),
    ]
