"""The kinds of value a stack file holds (host names, images, URIs, sizes, networks, ARNs...),
each with the check that names what is wrong: what configgen/stack.py's sections are made of."""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

from configgen.schema import Text

# The stores in the runner's own hands: SQLite and a folder locally, MySQL and an object store
# in compose.
BUNDLED = "bundled"


LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
ENDPOINT_HOST = rf"(?i:{LABEL}(\.{LABEL})*|\[[0-9a-f:]+\])"


def check_host(host: str) -> str | None:
    labels = host.removeprefix("*.").split(".")
    if all(label.isdigit() for label in labels):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return f"{host!r} is not a valid IPv4 address"
    if len(host) > 253:
        return f"{host!r} is longer than 253 characters"
    return None


HOST = Text(
    rf"(?i)(\*\.)?{LABEL}(\.{LABEL})*",
    "a host name such as mlflow.example.com (no scheme, port or path)",
    check_host,
)


def check_image(image: str) -> str | None:
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = last.partition(":")[2]
    if not tag and not digest:
        return f"{image!r} has no tag: pin a version (NAME:TAG)"
    if tag == "latest":
        return f"{image!r} uses the moving tag 'latest': pin a version instead"
    return None


IMAGE = Text(
    r"[a-z0-9][a-z0-9._/-]*(:[0-9]+/[a-z0-9._/-]+)?(:[\w][\w.-]{0,127})?(@sha256:[0-9a-f]{64})?",
    "an image reference with a pinned tag, e.g. mysql:8.4",
    check_image,
)

BACKEND_SCHEMES = (
    "sqlite",
    "mysql",
    "mysql+pymysql",
    "postgresql",
    "postgresql+psycopg2",
    "mssql+pyodbc",
)
ARTIFACT_SCHEMES = ("s3", "gs", "wasbs", "file")
BUCKET_RE = r"(?!xn--)(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"


def check_backend_store(uri: str) -> str | None:
    if uri == BUNDLED:
        return None
    parts = urlsplit(uri)
    if parts.scheme not in BACKEND_SCHEMES:
        return f"expected 'bundled' or a database URI ({', '.join(BACKEND_SCHEMES)}), got {uri!r}"
    if parts.password:
        return "holds a password; the stack file is committed, so leave the password out of it"
    return None


def check_artifact_destination(uri: str) -> str | None:
    if uri == BUNDLED:
        return None
    parts = urlsplit(uri)
    if parts.scheme not in ARTIFACT_SCHEMES:
        schemes = ", ".join(f"{s}://" for s in ARTIFACT_SCHEMES)
        return f"expected 'bundled' or a URI starting with {schemes}; got {uri!r}"
    if parts.scheme == "file":
        absolute = parts.netloc in ("", "localhost") and parts.path.startswith("/")
        return None if absolute else "a file URI needs an absolute path: file:///PATH"
    if parts.password or parts.username:
        return "holds credentials; the stack file is committed, so leave them out of it"
    if parts.scheme == "s3" and not re.fullmatch(BUCKET_RE, parts.netloc):
        return f"{parts.netloc!r} is not a valid S3 bucket name"
    return None


class _Size(Text):
    """An nginx size; YAML reads a bare `0` or `1048576` as a number, which is fine too."""

    def convert(self, value: Any) -> str:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            value = str(value)
        return super().convert(value)


SIZE = _Size(r"0|[1-9][0-9]{0,12}[kmg]?", "an nginx size such as 512m or 16g (0: no limit)")


def check_network(text: str) -> str | None:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return f"{text!r} is not an IP address or CIDR range"
    return None


NETWORK = Text(r"[0-9a-fA-F.:/]+", "an IP address or CIDR range such as 10.0.0.0/8", check_network)


FILE_PATH = Text(r"[^\x00-\x1f]+", "a file path")
FOLDER_PATH = Text(r"[^\x00-\x1f]+", "a folder path")
REGION = r"[a-z]{2}(-[a-z]+)+-[0-9]+"


# `mlflow server` options that configgen derives from other settings, and why users must not
# pass them through `mlflow.extra_args`.
DERIVED_SERVER_OPTIONS = {
    "--host": "configgen binds MLflow itself",
    "-h": "configgen binds MLflow itself",
    "--port": "set mlflow.port instead",
    "-p": "set mlflow.port instead",
    "--workers": "set mlflow.workers instead",
    "-w": "set mlflow.workers instead",
    "--backend-store-uri": "set mlflow.backend_store instead",
    "--default-artifact-root": "set mlflow.artifact_destination instead",
    "--artifacts-destination": "set mlflow.artifact_destination instead",
    "--serve-artifacts": "artifacts are always served through MLflow",
    "--no-serve-artifacts": "artifacts are always served through MLflow",
    "--artifacts-only": "the stack runs a full tracking server",
    "--allowed-hosts": "set hosts instead",
    "--cors-allowed-origins": "set hosts instead",
    "--disable-security-middleware": "it turns off MLflow's Host header check",
    "--gunicorn-opts": "it makes MLflow 3.5+ skip its security middleware",
    "--app-name": "nginx does the authentication",
    "--static-prefix": "nginx serves MLflow at the root of the stack's host names",
    "--uvicorn-opts": "configgen sets it (the local runner serves MLflow on a unix socket)",
}


def check_server_arg(arg: str) -> str | None:
    option = arg.split("=", 1)[0]
    if option in DERIVED_SERVER_OPTIONS:
        return f"{option} is not allowed here: {DERIVED_SERVER_OPTIONS[option]}"
    return None


PARTITION = r"arn:aws(-cn|-us-gov)?"
SECRET_ARN = Text(
    rf"|{PARTITION}:secretsmanager:{REGION}:[0-9]{{12}}:secret:[A-Za-z0-9/_+=.@!-]+(:[^:\s]+)?"
    rf"|{PARTITION}:ssm:{REGION}:[0-9]{{12}}:parameter/[A-Za-z0-9/_.-]+",
    "the ARN of a Secrets Manager secret (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-XXXXXX"
    "[:JSON_KEY]) or of an SSM parameter (arn:aws:ssm:REGION:ACCOUNT:parameter/NAME)",
)


def check_cname(cname: str) -> str | None:
    if cname and not cname.endswith(".elasticbeanstalk.com"):
        return f"{cname!r} is not an Elastic Beanstalk CNAME (NAME.REGION.elasticbeanstalk.com)"
    return None
