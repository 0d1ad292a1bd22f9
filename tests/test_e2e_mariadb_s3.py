"""The local stack against real external stores: MariaDB for metadata, an S3 endpoint for
artifacts, with the bucket made by the stack's own bucket code."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from configgen import procfs
from tests import mlflow_flow
from tests.localstack import local_stack
from tests.servers import mariadb, moto_s3
from tests.support import clean_env, run_configgen

BUCKET = "e2e-artifacts"


def s3_client(url: str, access_key: str, secret_key: str):
    return boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id=access_key, aws_secret_access_key=secret_key)  # fmt: skip


def test_mariadb_and_s3(tmp_path_factory):
    services = tmp_path_factory.mktemp("services")
    project = tmp_path_factory.mktemp("project")
    with mariadb(services) as db, moto_s3(services) as s3:
        s3_url = s3.url
        stack_yaml = (
            "hosts: [mlflow.example.com]\n"
            "auth: {bcrypt_cost: 4}\n"
            "mlflow:\n"
            f"  backend_store: mysql+pymysql://{db.user}@127.0.0.1:{db.port}/{db.database}\n"
            f"  artifact_destination: s3://{BUCKET}/mlflow\n"
            f"object_store: {{endpoint: '{s3_url}'}}\n"
        )
        (project / "stack").mkdir()
        (project / "stack" / "stack.yaml").write_text(stack_yaml)
        # The object store's key, as its administrator issued it, given to `configgen init`.
        given = clean_env(S3_ACCESS_KEY=s3.access_key, S3_SECRET_KEY=s3.secret_key)
        assert run_configgen("init", cwd=project, env=given).returncode == 0
        keys = {n: (project / "secrets" / n).read_text().strip()
                for n in ("s3_access_key", "s3_secret_key")}  # fmt: skip
        assert keys == {"s3_access_key": s3.access_key, "s3_secret_key": s3.secret_key}

        with local_stack(project, stack_yaml, MLFLOW_DB_PASSWORD=db.password) as stack:
            up_log = (stack.data / "logs" / "up.log").read_text()
            assert f"created bucket {BUCKET} on {s3_url}" in up_log
            assert db.password not in up_log
            mlflow_flow.exercise(stack, Path(services), "mariadb-s3")
            # `ps` shows every process's arguments to every user: no password among them.
            supervisor = int((stack.data / "up.pid").read_text())
            processes = procfs.descendants(supervisor)
            titles = [title for pid in processes if (title := procfs.command_line(pid))]
            assert any(b"uvicorn" in title for title in titles), titles
            for title in titles:
                for secret in (db.password, *keys.values()):
                    assert secret.encode() not in title, title

        # The metadata is in MariaDB ...
        assert "mariadb-s3" in db.sql("SELECT name FROM mlflow.experiments")
        assert int(db.sql("SELECT COUNT(*) FROM mlflow.metrics")) == 1000
        # ... and the artifacts in the bucket, not on local disk.
        objects = s3_client(s3_url, keys["s3_access_key"], keys["s3_secret_key"]).list_objects_v2(
            Bucket=BUCKET, Prefix="mlflow/"
        )
        sizes = {o["Key"].rsplit("/", 1)[-1]: o["Size"] for o in objects["Contents"]}
        assert sizes["model.bin"] == mlflow_flow.ARTIFACT_MB * 1024 * 1024
        # The store checks the key, as a real one does: the stack got in with the right one.
        with pytest.raises(ClientError) as refused:
            wrong = s3_client(s3_url, keys["s3_access_key"], "a wrong secret key")
            wrong.list_objects_v2(Bucket=BUCKET, Prefix="mlflow/")
        assert refused.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
        assert not (project / "data" / "artifacts").exists()
        assert not (project / "data" / "mlflow.db").exists()
