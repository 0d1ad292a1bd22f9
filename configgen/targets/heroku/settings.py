"""What app.json and heroku.yml say, computed from the stack file; and what Heroku offers
that both need to agree on (dyno sizes and their memory, the platform image's variables)."""

from __future__ import annotations

import json
from typing import Any

from configgen.container import users
from configgen.container.platform_env import workers_for_memory
from configgen.stack import Project

APP_JSON = "app.json"
HEROKU_YML = "heroku.yml"
# The platform image's build context (the lead's platform target renders it). Heroku builds
# in the Dockerfile's own folder, so that folder must hold everything the Dockerfile copies.
DOCKERFILE = "stack/platform/Dockerfile"
RELEASE_COMMAND = "mlflow-platform release"
POSTGRES = "heroku-postgresql"
# Plans Heroku retired: a Deploy button naming one fails before the app exists.
RETIRED_PLANS = ("hobby-dev", "hobby-basic", "mini")

# Memory of each dyno size in MB (Heroku's "Dyno Types" table, Cedar Common Runtime). The
# MLflow workers are sized to it: past it a dyno swaps (R14), at twice it Heroku restarts it.
DYNO_MEMORY_MB = {
    "eco": 512,
    "basic": 512,
    "standard-1x": 512,
    "standard-2x": 1024,
    "performance-m": 2560,
    "performance-l": 14336,
}

# Set by Heroku itself (the router's port, the Postgres add-on's URL): never declared.
SET_BY_HEROKU = ("PORT", "DATABASE_URL")


def workers(dyno_size: str) -> int:
    """The MLflow workers that fit a dyno of `dyno_size`."""
    return workers_for_memory(DYNO_MEMORY_MB[dyno_size])


def _optional(description: str) -> dict[str, Any]:
    # Heroku's default is required: true, which would make every field of the button's form
    # mandatory, the S3 keys of a GCS user included.
    return {"description": description, "required": False}


def env(project: Project) -> dict[str, dict[str, Any]]:
    """The platform image's variables the Deploy button asks for (docs/platform.md).

    MLFLOW_HTPASSWD has no value and no generator: a default user or a generated password
    would be a login nobody chose, and a random string is not an htpasswd file."""
    stack = project.stack
    size = stack.heroku.dyno_size
    users_file = stack.auth.htpasswd
    return {
        users.VARIABLE: {
            "description": (
                "The users, as an htpasswd file of bcrypt entries: make it with `configgen "
                f"htpasswd user add NAME` and paste the content of {users_file} (line breaks "
                "may become spaces). Never a password in clear."
            ),
            "required": True,
        },
        "MLFLOW_ARTIFACTS_DESTINATION": {
            "description": (
                "Where MLflow keeps artifacts: s3://BUCKET/PREFIX or gs://BUCKET/PREFIX (a "
                "dyno's disk is wiped at every restart)."
            ),
            "required": True,
        },
        "AWS_ACCESS_KEY_ID": _optional(
            "S3 artifacts: the access key of an IAM user that may read and write the bucket."
        ),
        "AWS_SECRET_ACCESS_KEY": _optional("S3 artifacts: that access key's secret."),
        "AWS_DEFAULT_REGION": _optional("S3 artifacts: the bucket's region, such as us-east-1."),
        "MLFLOW_S3_ENDPOINT_URL": _optional(
            "S3-compatible storage outside AWS: its endpoint (https://HOST). Empty for AWS S3."
        ),
        "GOOGLE_APPLICATION_CREDENTIALS_JSON": _optional(
            "GCS artifacts: a service account key that may use the bucket, as JSON or base64."
        ),
        "MLFLOW_HOSTS": _optional(
            "Custom domains of the app besides *.herokuapp.com, comma-separated."
        ),
        "WEB_CONCURRENCY": {
            **_optional(
                f"MLflow workers: {workers(size)} fit{'s' if workers(size) == 1 else ''} the "
                f"{size} dyno's "
                f"{DYNO_MEMORY_MB[size]} MB; more only with a bigger dyno."
            ),
            "value": str(workers(size)),
        },
    }


def app_json(project: Project) -> dict[str, Any]:
    """app.json, which Heroku reads once, when the Deploy button creates the app."""
    stack = project.stack
    return {
        "name": stack.name,
        "description": stack.heroku.description,
        "keywords": ["mlflow", "mlops", "tracking", "nginx"],
        # container: build heroku.yml's Dockerfile (a Cedar app; Fir runs no Docker images).
        "stack": "container",
        "formation": {"web": {"quantity": 1, "size": stack.heroku.dyno_size}},
        "addons": [{"plan": f"{POSTGRES}:{stack.heroku.postgres_plan}"}],
        "env": env(project),
    }


def app_json_text(project: Project) -> str:
    """app.json's text without its final newline (the template adds it). json.dumps rather
    than Jinja's tojson: that one sorts the keys and escapes ' and < as HTML needs."""
    return json.dumps(app_json(project), indent=2, sort_keys=False, ensure_ascii=False)


def heroku_yml_context(project: Project) -> dict[str, Any]:
    return {"dockerfile": DOCKERFILE, "release_command": RELEASE_COMMAND}
