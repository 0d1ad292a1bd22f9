"""The stack file: what it may contain, its defaults, and how it is found and read.

Every key is optional; the defaults describe a working stack. `stack/stack.yaml` in the
repository spells them out with comments, and `tests/test_stack.py` checks the two agree.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from configgen.errors import UsageError
from configgen.schema import Int, Invalid, ListOf, Text, load, section, setting

DEFAULT_STACK = Path("stack") / "stack.yaml"
STACK_ENV = "CONFIGGEN_STACK"

_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_ENDPOINT_HOST = rf"(?i:{_LABEL}(\.{_LABEL})*|\[[0-9a-f:]+\])"


def _check_host(host: str) -> str | None:
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
    rf"(?i)(\*\.)?{_LABEL}(\.{_LABEL})*",
    "a host name such as mlflow.example.com (no scheme, port or path)",
    _check_host,
)


def _check_image(image: str) -> str | None:
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
    _check_image,
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


def _check_backend_store(uri: str) -> str | None:
    if uri == "bundled":
        return None
    parts = urlsplit(uri)
    if parts.scheme not in BACKEND_SCHEMES:
        return f"expected 'bundled' or a database URI ({', '.join(BACKEND_SCHEMES)}), got {uri!r}"
    if parts.password:
        return "holds a password; the stack file is committed, so leave the password out of it"
    return None


def _check_artifact_destination(uri: str) -> str | None:
    if uri == "bundled":
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


def _check_network(text: str) -> str | None:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return f"{text!r} is not an IP address or CIDR range"
    return None


NETWORK = Text(r"[0-9a-fA-F.:/]+", "an IP address or CIDR range such as 10.0.0.0/8", _check_network)


FILE_PATH = Text(r"[^\x00-\x1f]+", "a file path")
FOLDER_PATH = Text(r"[^\x00-\x1f]+", "a folder path")
_REGION = r"[a-z]{2}(-[a-z]+)+-[0-9]+"


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


def _check_server_arg(arg: str) -> str | None:
    option = arg.split("=", 1)[0]
    if option in DERIVED_SERVER_OPTIONS:
        return f"{option} is not allowed here: {DERIVED_SERVER_OPTIONS[option]}"
    return None


@dataclass(frozen=True)
class Proxy:
    """nginx in front of MLflow."""

    port: int = setting(8080, Int(1, 65535))
    max_body_size: str = setting("16g", SIZE)
    timeout_seconds: int = setting(900, Int(1, 86400))
    # Load balancers whose X-Forwarded-For nginx believes (set_real_ip_from), as addresses or
    # CIDR ranges. Anyone else's X-Forwarded-For is ignored: it could be forged.
    trusted_proxies: tuple[str, ...] = setting((), ListOf(NETWORK))


@dataclass(frozen=True)
class Auth:
    # nginx's own secrets folder: runners mount it into nginx, away from the service secrets.
    htpasswd: str = setting("secrets/nginx/htpasswd", FILE_PATH)
    realm: str = setting(
        "MLflow",
        Text(r"[ !#-\[\]-~]{1,64}", "1-64 printable ASCII characters, no quotes or backslashes"),
    )
    bcrypt_cost: int = setting(12, Int(4, 16))
    min_password_length: int = setting(12, Int(8, 72))
    # A verified user:password is trusted this long before bcrypt checks it again.
    cache_seconds: int = setting(60, Int(1, 3600))
    # bcrypt checks (cache misses: new, expired or wrong credentials) per second, per client
    # address and in all. Beyond the rate up to verify_burst checks wait their turn; more are
    # refused (401) without hashing.
    verify_rate_per_client: int = setting(1, Int(1, 1000))
    verify_rate_total: int = setting(4, Int(1, 1000))
    verify_burst: int = setting(20, Int(4, 1000))
    # How long after its last use a verified credential still counts when the limits (full of
    # guesses) or a stopped verifier keep it from being checked again.
    stale_seconds: int = setting(3600, Int(1, 7 * 86400))

    def __post_init__(self) -> None:
        if self.stale_seconds < self.cache_seconds:
            raise Invalid(
                "auth.stale_seconds",
                f"{self.stale_seconds} is below auth.cache_seconds ({self.cache_seconds}): "
                "a verified credential would be forgotten before it expires",
            )


class _TlsMode(Text):
    """YAML 1.1 reads a bare `off` as false: that is what the user wrote."""

    def convert(self, value: Any) -> str:
        return super().convert("off" if value is False else value)


@dataclass(frozen=True)
class Tls:
    """HTTPS for the compose and local runners (on Elastic Beanstalk the load balancer has it)."""

    # self-signed: `configgen init` (or `up`) makes the key and a certificate for `hosts`;
    # files: your own certificate and key; off: plain HTTP, only behind a TLS-terminating
    # load balancer or on loopback.
    mode: str = setting(
        "self-signed", _TlsMode(r"self-signed|files|off", "self-signed, files or off")
    )
    certificate: str = setting("secrets/tls/certificate.pem", FILE_PATH)
    key: str = setting("secrets/tls/key.pem", FILE_PATH)
    # nginx's HTTPS port; proxy.port then answers /health and redirects the rest here.
    port: int = setting(8443, Int(1, 65535))

    @property
    def enabled(self) -> bool:
        return self.mode != "off"


@dataclass(frozen=True)
class MLflow:
    version: str = setting(
        "3.17.2",
        Text(r"[0-9]+\.[0-9]+\.[0-9]+([a-z0-9.+-]*)", 'a version such as "3.17.2" (quoted)'),
    )
    port: int = setting(5000, Int(1, 65535))
    workers: int = setting(2, Int(1))
    backend_store: str = setting("bundled", Text(r"\S+", "a database URI", _check_backend_store))
    artifact_destination: str = setting(
        "bundled", Text(r"\S+", "an artifact URI", _check_artifact_destination)
    )
    extra_args: tuple[str, ...] = setting(
        (), ListOf(Text(r"\S.*", "an `mlflow server` argument", _check_server_arg))
    )
    # MLflow features the stack leaves off unless named here (docs/security.md).
    features: tuple[str, ...] = setting((), ListOf(Text("gateway|jobs", "gateway or jobs")))


@dataclass(frozen=True)
class ObjectStore:
    """The S3 object store: the bundled one (compose), or one of yours (`endpoint`)."""

    bucket: str = setting("mlflow", Text(BUCKET_RE, "an S3 bucket name (3-63 of a-z 0-9 . -)"))
    endpoint: str = setting(
        "", Text(rf"|https?://{_ENDPOINT_HOST}(:[0-9]{{1,5}})?/?", "an http(s)://HOST[:PORT] URL")
    )
    region: str = setting("us-east-1", Text(_REGION, "a region such as us-east-1"))


@dataclass(frozen=True)
class Images:
    """Every image the stack runs, pinned; point them at a private registry if you need to."""

    nginx: str = setting("mlflow-stack/nginx:0.1.0", IMAGE)
    # Empty: built by the project, tagged with mlflow.version (see Stack.mlflow_image).
    mlflow: str = setting(
        "", Text(f"|{IMAGE.pattern}", IMAGE.what, lambda image: image and _check_image(image))
    )
    database: str = setting("mysql:8.4", IMAGE)
    object_store: str = setting("pgsty/silo:RELEASE.2026-09-16T00-00-00Z", IMAGE)


_PARTITION = r"arn:aws(-cn|-us-gov)?"
SECRET_ARN = Text(
    rf"|{_PARTITION}:secretsmanager:{_REGION}:[0-9]{{12}}:secret:[A-Za-z0-9/_+=.@!-]+(:[^:\s]+)?"
    rf"|{_PARTITION}:ssm:{_REGION}:[0-9]{{12}}:parameter/[A-Za-z0-9/_.-]+",
    "the ARN of a Secrets Manager secret (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-XXXXXX"
    "[:JSON_KEY]) or of an SSM parameter (arn:aws:ssm:REGION:ACCOUNT:parameter/NAME)",
)


def _check_cname(cname: str) -> str | None:
    if cname and not cname.endswith(".elasticbeanstalk.com"):
        return f"{cname!r} is not an Elastic Beanstalk CNAME (NAME.REGION.elasticbeanstalk.com)"
    return None


@dataclass(frozen=True)
class EBSecrets:
    """Secrets Elastic Beanstalk fetches into the environment at deployment (never the bundle)."""

    # The htpasswd file's content (`configgen htpasswd` output), for nginx.
    htpasswd: str = setting("", SECRET_ARN)
    # The whole backend store URI, password included; or just the password of
    # mlflow.backend_store (for an RDS-managed secret, add :password to its ARN).
    backend_store_uri: str = setting("", SECRET_ARN)
    database_password: str = setting("", SECRET_ARN)


@dataclass(frozen=True)
class ElasticBeanstalk:
    """The Elastic Beanstalk environment `configgen eb bundle` deploys to."""

    # Empty: MLflow accepts any *.elasticbeanstalk.com Host header.
    cname: str = setting(
        "", Text(f"(?i)(|{HOST.pattern.removeprefix('(?i)')})", HOST.what, _check_cname)
    )
    min_instances: int = setting(1, Int(1, 10000))
    max_instances: int = setting(1, Int(1, 10000))
    instance_types: tuple[str, ...] = setting(
        ("t3.medium",),
        ListOf(Text(r"[a-z][a-z0-9-]*\.[a-z0-9]+", "an EC2 instance type such as t3.medium"),
               min_items=1),
    )  # fmt: skip
    instance_profile: str = setting(
        "",
        Text(
            rf"|[A-Za-z0-9+=,.@_-]{{1,128}}|{_PARTITION}:iam::[0-9]{{12}}:instance-profile/\S+",
            "an instance profile name or ARN",
        ),
    )
    https_certificate: str = setting(
        "",
        Text(
            rf"|{_PARTITION}:acm:{_REGION}:[0-9]{{12}}:certificate/[0-9a-f-]+",
            "an ACM certificate ARN (arn:aws:acm:REGION:ACCOUNT:certificate/ID)",
        ),
    )
    secrets: EBSecrets = section(EBSecrets)


@dataclass(frozen=True)
class Stack:
    name: str = setting(
        "mlflow", Text(r"[a-z][a-z0-9-]{0,39}", "a name of lowercase letters, digits and -")
    )
    project_dir: str = setting("..", FOLDER_PATH)
    secrets_dir: str = setting("secrets", FOLDER_PATH)
    hosts: tuple[str, ...] = setting(("localhost",), ListOf(HOST, min_items=1))
    proxy: Proxy = section(Proxy)
    tls: Tls = section(Tls)
    auth: Auth = section(Auth)
    mlflow: MLflow = section(MLflow)
    object_store: ObjectStore = section(ObjectStore)
    images: Images = section(Images)
    elastic_beanstalk: ElasticBeanstalk = section(ElasticBeanstalk)

    @property
    def mlflow_image(self) -> str:
        """The MLflow server image; by default tagged with the MLflow version it holds."""
        return self.images.mlflow or f"mlflow-stack/mlflow:{self.mlflow.version}"


@dataclass(frozen=True)
class Project:
    """A stack file read from disk, with the folders its relative paths point into."""

    stack_file: Path
    root: Path  # project_dir, resolved against the stack file's folder
    stack: Stack

    def path(self, relative: str) -> Path:
        """A path from the stack file, resolved against the project folder."""
        return self.root / relative

    @property
    def htpasswd(self) -> Path:
        return self.path(self.stack.auth.htpasswd)

    @property
    def secrets_dir(self) -> Path:
        return self.path(self.stack.secrets_dir)

    @property
    def tls_certificate(self) -> Path:
        return self.path(self.stack.tls.certificate)

    @property
    def tls_key(self) -> Path:
        return self.path(self.stack.tls.key)

    def relative(self, path: Path) -> str:
        """`path` as the user would type it from the project folder (for messages)."""
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)


class _StrictLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys; a stack file with both is a mistake."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def discover(given: str | None) -> Path | None:
    """The stack file to use: --stack, else $CONFIGGEN_STACK, else stack/stack.yaml here or
    in the nearest parent folder (as git and docker compose look for theirs); None if none."""
    chosen = given or os.environ.get(STACK_ENV)
    if chosen:
        return Path(chosen)
    here = Path.cwd()
    for folder in (here, *here.parents):
        if (folder / DEFAULT_STACK).is_file():
            return Path(os.path.relpath(folder / DEFAULT_STACK))  # short, for messages
    return None


def find(given: str | None) -> Project:
    """Read the stack file `discover` picks, or say how to name one."""
    path = discover(given)
    if path is None:
        raise UsageError(
            f"no {DEFAULT_STACK} in {Path.cwd()} or its parents; "
            f"pass --stack PATH or set {STACK_ENV}"
        )
    return read(path)


def parse(text: str, name: str) -> Stack:
    """Validate stack file text; errors start with `name`, the file as the user knows it."""
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise UsageError(f"{name}: {where}not valid YAML: {err.problem or err.context}") from None
    except yaml.YAMLError as err:
        raise UsageError(f"{name}: not valid YAML: {err}") from None
    try:
        return load(Stack, {} if data is None else data)
    except Invalid as err:
        raise UsageError(f"{name}: {err}") from None


def read(path: Path) -> Project:
    """Read and validate the stack file at `path`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such stack file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a folder, not a stack file") from None
    except PermissionError:
        raise UsageError(f"{path}: cannot read the stack file (permission denied)") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text") from None
    stack = parse(text, str(path))
    return Project(path, (path.parent / stack.project_dir).resolve(), stack)
