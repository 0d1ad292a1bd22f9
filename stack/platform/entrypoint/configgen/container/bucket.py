"""Make sure the artifact bucket exists: MLflow does not create it, and the first
`log_artifact` would fail with NoSuchBucket. Any S3 API will do (the `minio` SDK is generic)."""

from __future__ import annotations

import os
import time
from urllib.parse import urlsplit

from configgen.container.stores import S3
from configgen.envvars import file_env
from configgen.errors import ConfiggenError, StackFailed

# Answers meaning someone (maybe a concurrent start) created it first: fine.
_ALREADY_THERE = {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}


def ensure_bucket(s3: S3) -> bool:
    """Create the bucket unless it exists; return whether it was created."""
    import urllib3
    from minio import Minio
    from minio.error import S3Error

    url = urlsplit(s3.endpoint)
    client = Minio(
        url.netloc,
        access_key=s3.access_key,
        secret_key=s3.secret_key,
        secure=url.scheme == "https",
        region=s3.region,
        # Fail in seconds, not after minio's default minutes of retries, when nothing listens.
        http_client=urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=5, read=30), retries=urllib3.Retry(total=2)
        ),
    )
    try:
        if client.bucket_exists(s3.bucket):
            return False
        client.make_bucket(s3.bucket)
    except S3Error as err:
        if err.code in _ALREADY_THERE:
            return False
        raise StackFailed(
            f"object store {s3.endpoint}: bucket {s3.bucket}: {err.code}: {err.message}"
        ) from None
    except urllib3.exceptions.HTTPError as err:
        raise StackFailed(
            f"object store {s3.endpoint} is unreachable ({err.__class__.__name__})"
        ) from None
    return True


def main() -> int:
    """The compose stack's one-shot bucket job: make the artifact bucket, retrying while the
    object store starts. Settings from the environment, as the MLflow container gets them."""
    try:
        destination = os.environ.get("MLFLOW_ARTIFACTS_DESTINATION", "")
        if not destination.startswith("s3://"):
            raise StackFailed(f"MLFLOW_ARTIFACTS_DESTINATION is not an s3:// URI: {destination!r}")
        s3 = S3(
            endpoint=os.environ.get("MLFLOW_S3_ENDPOINT_URL", "https://s3.amazonaws.com"),
            region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
            bucket=urlsplit(destination).netloc,
            access_key=file_env("AWS_ACCESS_KEY_ID") or "",
            secret_key=file_env("AWS_SECRET_ACCESS_KEY") or "",
        )
        deadline = time.monotonic() + float(os.environ.get("BUCKET_WAIT_SECONDS", "120"))
        while True:
            try:
                created = ensure_bucket(s3)
                break
            except StackFailed as err:
                if time.monotonic() > deadline:
                    raise
                print(f"bucket: {err}; retrying", flush=True)
                time.sleep(2)
    except ConfiggenError as err:
        print(f"bucket: error: {err}", flush=True)
        return err.exit_code
    print(f"bucket: {s3.bucket} {'created' if created else 'already exists'} on {s3.endpoint}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
