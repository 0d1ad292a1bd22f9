"""The MLflow image's build context (stack/mlflow/, rendered): its code needs only the standard
library, so the image carries MLflow and its drivers and nothing of configgen's dependencies."""

from __future__ import annotations

import subprocess

from configgen import mlflow_image
from tests.support import REPO

CONTEXT = REPO / mlflow_image.FOLDER

# Imports the container code and lists every module it loaded that is not the standard
# library's; Python started without site-packages (-S) and ignoring the environment (-I).
PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
before = set(sys.modules)
import configgen.container.entrypoint, configgen.container.bucket
loaded = {m.split(".")[0] for m in set(sys.modules) - before}
print(" ".join(sorted(loaded - set(sys.stdlib_module_names) - {"configgen"})))
"""


def test_the_container_code_needs_only_the_standard_library():
    code = CONTEXT / mlflow_image.CODE
    done = subprocess.run(["/usr/bin/python3", "-I", "-S", "-c", PROBE, str(code)],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
    shipped = {p.relative_to(code / "configgen").as_posix() for p in code.rglob("*.py")}
    assert shipped == set(mlflow_image.CODE_FILES)


def test_the_dockerfile_builds_from_its_own_folder():
    dockerfile = (CONTEXT / "Dockerfile").read_text()
    copies = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("COPY ")]
    assert copies == ["certs/", "entrypoint/"]
    for source in copies:
        assert (CONTEXT / source).is_dir(), source
    assert 'ENTRYPOINT ["python", "-m", "configgen.container.entrypoint"]' in dockerfile
    assert "pip install /src" not in dockerfile and "configgen[" not in dockerfile

