"""What the App Runner CloudFormation template is filled with (docs/app-runner.md).

The values here are CloudFormation values, ready for `tojson`: a plain string, or an intrinsic
function as a mapping ({"Ref": ...}, {"Fn::Sub": ...}). JSON is YAML, so the template can
write either the same way, and no stack file value is ever spliced into YAML syntax.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from configgen.stack import Stack

TEMPLATE_FILE = "stack/app-runner.yaml"
# The platform image listens on $PORT; App Runner sets PORT to ImageConfiguration.Port.
PORT = 8080
HEALTH_PATH = "/health"  # open, no credentials: 503 until MLflow is up, then 200
HTPASSWD_VARIABLE = "MLFLOW_HTPASSWD"
DATABASE_VARIABLE = "DATABASE_URL"
# Aurora PostgreSQL with Serverless v2 (a db.serverless instance); v1 reached its end of life.
AURORA_ENGINE = "aurora-postgresql"
AURORA_VERSION = "17.11"
DATABASE_NAME = "mlflow"
DATABASE_USER = "mlflow"
DATABASE_PORT = 5432
# Characters a key prefix may have in an IAM ARN and a Fn::Sub string as they are: no `*` or
# `?` (IAM wildcards), no `$` (Fn::Sub's variables), nothing a URL would escape.
PREFIX_RE = r"[A-Za-z0-9!_.'()=+@,/-]*"

Value = str | dict[str, object]


def _sub(text: str) -> Value:
    return {"Fn::Sub": text}


@dataclass(frozen=True)
class Artifacts:
    """Where MLflow keeps artifacts: the stack file's S3 bucket and prefix, or Parameters."""

    bucket: str  # "" when the template asks for ArtifactBucket / ArtifactPrefix
    prefix: str
    why_parameters: str = ""

    @property
    def parameters(self) -> bool:
        return not self.bucket

    def _bucket(self) -> str:
        return self.bucket or "${ArtifactBucket}"

    def _prefix(self) -> str:
        return "${ArtifactPrefix}" if self.parameters else self.prefix

    def destination(self) -> Value:
        """MLFLOW_ARTIFACTS_DESTINATION."""
        if self.parameters:
            return _sub("s3://${ArtifactBucket}/${ArtifactPrefix}")
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def bucket_arn(self) -> Value:
        return _sub(f"arn:${{AWS::Partition}}:s3:::{self._bucket()}")

    def objects_arn(self) -> Value:
        """The objects MLflow may read, write and delete: those under the prefix only."""
        under = f"{self._prefix()}/*" if self._prefix() else "*"
        return _sub(f"arn:${{AWS::Partition}}:s3:::{self._bucket()}/{under}")

    def list_prefixes(self) -> list[Value]:
        """s3:prefix values ListBucket is limited to; none for a whole bucket."""
        prefix = self._prefix()
        if not prefix:
            return []
        if self.parameters:
            return [{"Ref": "ArtifactPrefix"}, _sub(f"{prefix}/*")]
        return [prefix, f"{prefix}/*"]


def artifacts(stack: Stack) -> Artifacts:
    """AWS S3 from mlflow.artifact_destination when it names a bucket there; otherwise the
    template asks for the bucket, rather than give the role a bucket that is not on AWS."""
    parts = urlsplit(stack.mlflow.artifact_destination)
    if stack.mlflow.bundled_artifacts or parts.scheme != "s3":
        return Artifacts("", "", "mlflow.artifact_destination is not an s3:// URI")
    if stack.object_store.endpoint:
        return Artifacts(
            "", "", "mlflow.artifact_destination is on object_store.endpoint, not AWS S3"
        )
    prefix = parts.path.strip("/")
    if not re.fullmatch(PREFIX_RE, prefix):
        return Artifacts(
            "", "", "mlflow.artifact_destination's prefix has characters an IAM policy cannot "
            "name as they are"
        )  # fmt: skip
    return Artifacts(parts.netloc, prefix)


def environment(stack: Stack) -> dict[str, Value]:
    """RuntimeEnvironmentVariables: settings only, nothing secret (the console shows them)."""
    return {
        "MLFLOW_ARTIFACTS_DESTINATION": artifacts(stack).destination(),
        # boto3 finds the region from this; the S3 gateway endpoint serves this region only.
        "AWS_DEFAULT_REGION": {"Ref": "AWS::Region"},
    }


def context(stack: Stack) -> dict[str, object]:
    runner = stack.app_runner
    return {
        "name": stack.name,
        "image": stack.platform_image,
        "runner": runner,
        "port": PORT,
        "health_path": HEALTH_PATH,
        "artifacts": artifacts(stack),
        "environment": environment(stack),
        "htpasswd_variable": HTPASSWD_VARIABLE,
        "database_variable": DATABASE_VARIABLE,
        "engine": AURORA_ENGINE,
        "engine_version": AURORA_VERSION,
        "database_name": DATABASE_NAME,
        "database_user": DATABASE_USER,
        "database_port": DATABASE_PORT,
    }
