"""What a team does with MLflow, through the real client: the end-to-end check every runner
must pass (local with SQLite, local with MariaDB and S3, and the compose stack)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from tests.localstack import ARTIFACTS, RunningStack, mlflow_client_env

ARTIFACT_MB = 50


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def exercise(stack: RunningStack, workdir: Path, name: str) -> dict[str, float]:
    """Run the whole flow as the stack's first user; return the artifact round-trip figures."""
    with mlflow_client_env(stack):
        client = MlflowClient(tracking_uri=stack.url)
        experiment_id = client.create_experiment(name)
        run = client.create_run(experiment_id, run_name="e2e")
        run_id = run.info.run_id

        now = int(time.time() * 1000)
        client.log_batch(
            run_id,
            metrics=[Metric("loss", 1.0 / (step + 1), now + step, step) for step in range(1000)],
            params=[Param("lr", "0.01"), Param("layers", "3")],
            tags=[RunTag("team", "vision")],
        )
        history = client.get_metric_history(run_id, "loss")
        assert sorted(m.step for m in history) == list(range(1000))
        found = client.search_runs(
            [experiment_id], filter_string="params.lr = '0.01' and tags.team = 'vision'"
        )
        assert [r.info.run_id for r in found] == [run_id]

        upload = workdir / "model.bin"
        upload.write_bytes(os.urandom(ARTIFACT_MB * 1024 * 1024))
        started = time.perf_counter()
        client.log_artifact(run_id, str(upload), "model")
        upload_s = time.perf_counter() - started
        mlmodel = "flavors: {}\n"
        client.log_text(run_id, mlmodel, "model/MLmodel")
        listed = {f.path: f.file_size for f in client.list_artifacts(run_id, "model")}
        assert listed == {
            "model/MLmodel": len(mlmodel),
            "model/model.bin": ARTIFACT_MB * 1024 * 1024,
        }

        target = workdir / "download"
        target.mkdir()
        started = time.perf_counter()
        downloaded = client.download_artifacts(run_id, "model/model.bin", str(target))
        download_s = time.perf_counter() - started
        assert _sha256(Path(downloaded)) == _sha256(upload)
        # Both ways through nginx and MLflow (proxied artifacts), not around them.
        log = stack.access_log()
        if log is not None:
            assert re.search(r'"PUT /api/2.0/mlflow-artifacts/artifacts/\S+/model.bin HTTP', log)
            assert re.search(r'"GET /api/2.0/mlflow-artifacts/artifacts/\S+/model.bin HTTP', log)
        client.set_terminated(run_id)

        model = f"{name}-model"
        client.create_registered_model(model)
        version = client.create_model_version(
            model, source=f"{run.info.artifact_uri}/model", run_id=run_id
        )
        client.set_registered_model_alias(model, "champion", version.version)
        assert client.get_model_version_by_alias(model, "champion").version == version.version

    figures = {
        "artifact_mb": ARTIFACT_MB,
        "upload_s": round(upload_s, 3),
        "download_s": round(download_s, 3),
        "upload_mb_per_s": round(ARTIFACT_MB / upload_s, 1),
        "download_mb_per_s": round(ARTIFACT_MB / download_s, 1),
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"roundtrip-{name}.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(f"{name}: {figures}")
    return figures
