"""The stack file: what it may contain, its defaults, and how it is found and read.

Every key is optional; the defaults describe a working stack. `stack/stack.yaml` in the
repository spells them out with comments, and `tests/test_stack.py` checks the two agree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from configgen.container.server import DEFAULT_PORT, DEFAULT_WORKERS
from configgen.errors import UsageError
from configgen.schema import Int, Invalid, ListOf, Text, load, section, setting
from configgen.values import (
    BUCKET_RE,
    BUNDLED,
    ENDPOINT_HOST,
    FILE_PATH,
    FOLDER_PATH,
    HOST,
    IMAGE,
    NETWORK,
    PARTITION,
    REGION,
    SECRET_ARN,
    SIZE,
    check_artifact_destination,
    check_backend_store,
    check_cname,
    check_image,
    check_server_arg,
)

DEFAULT_STACK = Path("stack") / "stack.yaml"
STACK_ENV = "CONFIGGEN_STACK"


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
    port: int = setting(DEFAULT_PORT, Int(1, 65535))
    workers: int = setting(DEFAULT_WORKERS, Int(1))
    backend_store: str = setting(BUNDLED, Text(r"\S+", "a database URI", check_backend_store))
    artifact_destination: str = setting(
        BUNDLED, Text(r"\S+", "an artifact URI", check_artifact_destination)
    )
    extra_args: tuple[str, ...] = setting(
        (), ListOf(Text(r"\S.*", "an `mlflow server` argument", check_server_arg))
    )
    # MLflow features the stack leaves off unless named here (docs/security.md).
    features: tuple[str, ...] = setting((), ListOf(Text("gateway|jobs", "gateway or jobs")))

    @property
    def bundled_backend(self) -> bool:
        return self.backend_store == BUNDLED

    @property
    def bundled_artifacts(self) -> bool:
        return self.artifact_destination == BUNDLED


@dataclass(frozen=True)
class ObjectStore:
    """The S3 object store: the bundled one (compose), or one of yours (`endpoint`)."""

    bucket: str = setting("mlflow", Text(BUCKET_RE, "an S3 bucket name (3-63 of a-z 0-9 . -)"))
    endpoint: str = setting(
        "", Text(rf"|https?://{ENDPOINT_HOST}(:[0-9]{{1,5}})?/?", "an http(s)://HOST[:PORT] URL")
    )
    region: str = setting("us-east-1", Text(REGION, "a region such as us-east-1"))


@dataclass(frozen=True)
class Images:
    """Every image the stack runs, pinned; point them at a private registry if you need to."""

    nginx: str = setting("mlflow-stack/nginx:0.1.0", IMAGE)
    # Empty: built by the project, tagged with mlflow.version (see Stack.mlflow_image).
    mlflow: str = setting(
        "", Text(f"|{IMAGE.pattern}", IMAGE.what, lambda image: image and check_image(image))
    )
    # Empty: built from stack/platform/ and tagged mlflow-stack/platform:<mlflow.version>.
    platform: str = setting(
        "", Text(f"|{IMAGE.pattern}", IMAGE.what, lambda image: image and check_image(image))
    )
    database: str = setting("mysql:8.4", IMAGE)
    object_store: str = setting("pgsty/silo:RELEASE.2026-09-16T00-00-00Z", IMAGE)


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
        "", Text(f"(?i)(|{HOST.pattern.removeprefix('(?i)')})", HOST.what, check_cname)
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
            rf"|[A-Za-z0-9+=,.@_-]{{1,128}}|{PARTITION}:iam::[0-9]{{12}}:instance-profile/\S+",
            "an instance profile name or ARN",
        ),
    )
    https_certificate: str = setting(
        "",
        Text(
            rf"|{PARTITION}:acm:{REGION}:[0-9]{{12}}:certificate/[0-9a-f-]+",
            "an ACM certificate ARN (arn:aws:acm:REGION:ACCOUNT:certificate/ID)",
        ),
    )
    secrets: EBSecrets = section(EBSecrets)


@dataclass(frozen=True)
class Platform:
    """The platform image (stack/platform/): one container for Heroku, AWS App Runner and the
    like, behind the platform's TLS-terminating router (docs/platform.md)."""

    # Host names MLflow accepts besides `hosts`: the platforms' default domains (MLFLOW_HOSTS
    # adds custom domains when the container starts). A leading `*.` stands for any labels.
    hosts: tuple[str, ...] = setting(
        ("*.herokuapp.com", "*.awsapprunner.com"), ListOf(HOST)
    )


@dataclass(frozen=True)
class Heroku:
    """app.json (the Deploy button) and heroku.yml, at the project folder's root."""

    # What the Deploy button page says about the app.
    description: str = setting(
        "MLflow tracking server with a login (nginx, bcrypt users, Heroku Postgres)",
        Text(r"[^\n]{1,200}", "one line of 1-200 characters"),
    )
    # The web dyno: its size decides the memory, and so the MLflow workers that fit.
    dyno_size: str = setting(
        "basic",
        Text(r"eco|basic|standard-1x|standard-2x|performance-m|performance-l",
             "eco, basic, standard-1x, standard-2x, performance-m or performance-l"),
    )  # fmt: skip
    # The Heroku Postgres plan the Deploy button provisions (essential-0 is the smallest).
    postgres_plan: str = setting(
        "essential-0", Text(r"essential-[0-9]+|standard-[0-9]+|premium-[0-9]+",
                            "a Heroku Postgres plan such as essential-0")
    )  # fmt: skip


@dataclass(frozen=True)
class AppRunner:
    """The AWS App Runner CloudFormation template (stack/app-runner.yaml)."""

    # vCPU and memory of each instance, as App Runner names them.
    cpu: str = setting("1 vCPU", Text(r"(0\.25|0\.5|1|2|4) vCPU", "0.25, 0.5, 1, 2 or 4 vCPU"))
    memory: str = setting(
        "2 GB", Text(r"(0\.5|1|2|3|4|6|8|10|12) GB", "0.5, 1, 2, 3, 4, 6, 8, 10 or 12 GB")
    )
    min_instances: int = setting(1, Int(1, 25))
    max_instances: int = setting(2, Int(1, 25))

    def __post_init__(self) -> None:
        if self.min_instances > self.max_instances:
            raise Invalid(
                "app_runner.min_instances",
                f"{self.min_instances} is above app_runner.max_instances ({self.max_instances})",
            )


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
    platform: Platform = section(Platform)
    heroku: Heroku = section(Heroku)
    app_runner: AppRunner = section(AppRunner)

    @property
    def mlflow_image(self) -> str:
        """The MLflow server image; by default tagged with the MLflow version it holds."""
        return self.images.mlflow or f"mlflow-stack/mlflow:{self.mlflow.version}"

    @property
    def platform_image(self) -> str:
        """The platform image (stack/platform/), tagged like the MLflow image."""
        return self.images.platform or f"mlflow-stack/platform:{self.mlflow.version}"


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
            return path.resolve().relative_to(self.root).as_posix()
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
            f"pass --stack PATH, set {STACK_ENV}, or make a project with `configgen new DIR`"
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
