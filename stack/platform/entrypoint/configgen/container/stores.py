"""The stores as URIs and endpoints, for the image and the local runner alike."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

from configgen.errors import UsageError


def with_password(uri: str, password: str) -> str:
    """`uri` (SCHEME://USER@HOST/DB, kept in the stack file) with the password added."""
    parts = urlsplit(uri)
    if not parts.username:
        raise UsageError(
            "MLFLOW_DB_PASSWORD is set but the backend store URI names no user; "
            "write it as SCHEME://USER@HOST/DATABASE"
        )
    if parts.password:
        return uri
    netloc = f"{parts.username}:{quote(password, safe='')}@{parts.hostname}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass(frozen=True)
class S3:
    """A self-hosted S3 endpoint the artifacts go to, and the bucket to make sure of."""

    endpoint: str
    region: str
    bucket: str
    access_key: str
    secret_key: str

    def environment(self) -> dict[str, str]:
        """What boto3 inside `mlflow server` needs to reach it."""
        return {
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
        }
