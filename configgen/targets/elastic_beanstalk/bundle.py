"""`configgen eb bundle`: the zip uploaded to Elastic Beanstalk.

At the zip's root: the MLflow image's build context (configgen/mlflow_image.py: its
Dockerfile and configgen's container code, from the installed package), the project's extra CA
certificates, Dockerrun.aws.json, .ebextensions/ and .platform/, all rendered fresh from the
stack file. Entries carry their Unix modes (hooks 0755) and a fixed timestamp, so the same
stack gives the same zip. A bundle is written only if the stack may run on several instances
and the zip passes `configgen eb check`.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from configgen import htpasswd, mlflow_image, render
from configgen.errors import CheckFailed, UsageError
from configgen.stack import Project
from configgen.targets.elastic_beanstalk import check, files, settings

ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can hold: no build time in the bundle

Files = dict[str, tuple[bytes, int]]  # path in the zip: content, Unix mode


@dataclass(frozen=True)
class Bundle:
    path: Path
    size: int
    warnings: list[str]


def _certificates(project: Project) -> Files:
    """The project's extra CA certificates for the image build (git-ignored, so not rendered)."""
    folder = project.root / mlflow_image.FOLDER / mlflow_image.CERTS
    found = sorted(folder.glob("*.crt")) if folder.is_dir() else []
    return {f"{mlflow_image.CERTS}/{p.name}": (p.read_bytes(), 0o644) for p in found}


def contents(project: Project) -> Files:
    """Every file of the bundle."""
    outputs = [*mlflow_image.outputs(project.stack, folder=""), *files.outputs(project)]
    rendered = render.render(project, outputs)
    return _certificates(project) | {p: (f.data, f.mode) for p, f in rendered.items()}


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
    problems = settings.refusals(project, users(project))
    if len(problems) == 1:
        raise UsageError(f"refusing to bundle for Elastic Beanstalk: {problems[0]}")
    if problems:
        raise UsageError(
            f"refusing to bundle {project.relative(project.stack_file)} for Elastic Beanstalk "
            f"({len(problems)} problems above)",
            details=problems,
        )


def make(project: Project, out: Path | None = None) -> Bundle:
    """Write the bundle, checked; keep nothing if its own check fails."""
    check_deployable(project)
    out = out or default_out(project)
    size = write_zip(contents(project), out)
    problems = check.check(out, check.known_secrets(project))
    if problems:
        out.unlink()
        count = f"{len(problems)} problem{'' if len(problems) == 1 else 's'}"
        raise CheckFailed(
            f"the bundle failed its own check ({count} above); nothing kept", details=problems
        )
    return Bundle(out, size, settings.warnings(project))
