"""`configgen eb bundle`: the zip uploaded to Elastic Beanstalk.

At the zip's root: the MLflow server image's Dockerfile and what it copies (configgen's own
source, which holds the container's entrypoint), Dockerrun.aws.json, .ebextensions/ and
.platform/, rendered fresh from the stack file. Entries carry their Unix modes (hooks 0755)
and a fixed timestamp, so the same stack gives the same zip.
"""

from __future__ import annotations

import os
import re
import tempfile
import zipfile
from pathlib import Path

import configgen
from configgen import eb, htpasswd, render
from configgen.errors import UsageError
from configgen.stack import Project, Stack

# configgen's source checkout: the image is built from it, as compose builds it.
SOURCE_ROOT = Path(configgen.__file__).resolve().parent.parent
IMAGE_DOCKERFILE = "stack/mlflow/Dockerfile"
IMAGE_CERTS = "stack/mlflow/certs"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can hold: no build time in the bundle

Files = dict[str, tuple[bytes, int]]  # path in the zip: content, Unix mode


def _pin(dockerfile: str, stack: Stack) -> str:
    """The Dockerfile with the stack's MLflow version and port as defaults: EB passes no
    build arguments."""
    for pattern, value in (
        (r"^ARG MLFLOW_VERSION=\S+$", f"ARG MLFLOW_VERSION={stack.mlflow.version}"),
        (r"^EXPOSE \d+$", f"EXPOSE {stack.mlflow.port}"),
    ):
        dockerfile, count = re.subn(pattern, value, dockerfile, count=1, flags=re.MULTILINE)
        if count != 1:
            raise UsageError(f"{IMAGE_DOCKERFILE}: no line matching {pattern!r} to pin")
    return dockerfile


def image_sources(stack: Stack, root: Path = SOURCE_ROOT) -> Files:
    """The Dockerfile (at the zip's root) and everything it copies."""
    dockerfile = root / IMAGE_DOCKERFILE
    if not dockerfile.is_file():
        raise UsageError(
            f"{dockerfile}: not found; the bundle builds the MLflow image from configgen's "
            "source, so install configgen from a clone of its repository (pip install -e .)"
        )
    files: Files = {"Dockerfile": (_pin(dockerfile.read_text(), stack).encode(), 0o644)}
    paths = [root / "pyproject.toml", root / "README.md"]
    paths += sorted(p for p in (root / "configgen").rglob("*") if p.suffix in (".py", ".j2"))
    paths += sorted(p for p in (root / IMAGE_CERTS).iterdir() if p.is_file())
    for path in paths:
        files[path.relative_to(root).as_posix()] = (path.read_bytes(), 0o644)
    return files


def contents(project: Project) -> Files:
    """Every file of the bundle."""
    outputs = render.eb_outputs(project)
    rendered = render.render(project, outputs)
    files = image_sources(project.stack)
    files.update({path: (data, render.file_mode(path)) for path, data in rendered.items()})
    return files


def users(project: Project) -> list[tuple[str, str]]:
    """The stack's users with their hash schemes (none if there is no htpasswd file)."""
    if not project.htpasswd.exists():
        return []
    return htpasswd.entries(project.htpasswd)


def write_zip(files: Files, out: Path) -> int:
    """Write the zip atomically (a reader never sees half of one); return its size."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(files):
                data, mode = files[path]
                entry = zipfile.ZipInfo(path, ZIP_DATE)
                entry.external_attr = (0o100000 | mode) << 16  # a regular file and its mode
                entry.create_system = 3  # Unix, so that unzip applies the mode
                entry.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(entry, data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out.stat().st_size


def default_out(project: Project) -> Path:
    return project.root / "dist" / f"{project.stack.name}-eb.zip"


def check_deployable(project: Project) -> None:
    """Refuse, with every reason, a stack that Elastic Beanstalk would run wrongly."""
    problems = eb.refusals(project, users(project))
    if len(problems) == 1:
        raise UsageError(f"refusing to bundle for Elastic Beanstalk: {problems[0]}")
    if problems:
        raise UsageError(
            f"refusing to bundle {project.relative(project.stack_file)} for Elastic Beanstalk "
            f"({len(problems)} problems above)",
            details=problems,
        )
