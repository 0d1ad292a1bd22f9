"""The render engine: Outputs (a path, a template, its values) in, file contents out.

Rendering is a pure function of the stack file: the same input gives byte-identical output, so
the repository can commit the render of its default stack file and `--check` can catch drift.
Templates are Jinja2 files inside the package that owns them (`templates/` beside the module);
they substitute values computed in Python. Which files exist is the targets' business
(configgen/targets/): this module knows none of them.
"""

from __future__ import annotations

import functools
import importlib.resources
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from configgen.fileio import atomic_write
from configgen.stack import Project

SHARED = "configgen"  # the package whose templates/ every target may include from
FILE_MODE = 0o644
PROGRAM_MODE = 0o755


@dataclass(frozen=True)
class Output:
    """One rendered file: its path under the output folder, its template in `package`'s
    `templates/` folder, and the values. `copy` names a file of `package` to write as it is
    (configgen's own modules for the MLflow image) instead of a template."""

    path: str
    template: str = ""
    context: Mapping[str, Any] = field(default_factory=dict)
    package: str = SHARED
    program: bool = False  # run as a program (hooks, entrypoints): executable
    copy: str = ""

    @property
    def mode(self) -> int:
        return PROGRAM_MODE if self.program else FILE_MODE


@dataclass(frozen=True)
class Rendered:
    data: bytes
    mode: int


@functools.cache
def _environment(package: str) -> jinja2.Environment:
    return jinja2.Environment(
        # A target's templates include the shared ones (configgen/templates/nginx/...).
        loader=jinja2.ChoiceLoader(
            [jinja2.PackageLoader(package, "templates"), jinja2.PackageLoader(SHARED, "templates")]
        ),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # noqa: S701 - these are config files, not HTML
    )


def _render_one(out: Output, header: str) -> bytes:
    if out.copy:
        return (importlib.resources.files(out.package) / out.copy).read_bytes()
    template = _environment(out.package).get_template(out.template)
    return template.render(header=header, **out.context).encode()


def render(project: Project, files: list[Output]) -> dict[str, Rendered]:
    """Render `files`; each template starts with a header naming the stack file it came from
    (JSON, which has no comments, excepted)."""
    source = project.relative(project.stack_file)
    header = (
        f"# Rendered by configgen from {source}: edit that file and run `configgen render`;\n"
        "# changes made here are overwritten."
    )
    return {out.path: Rendered(_render_one(out, header), out.mode) for out in files}


def write(rendered: Mapping[str, Rendered], out_dir: Path) -> list[str]:
    """Write the files that differ from what is on disk; return their paths."""
    changed = []
    for path, file in rendered.items():
        target = out_dir / path
        if target.is_file() and target.read_bytes() == file.data and not _lost_x(target, file):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, file.data, file.mode)
        changed.append(path)
    return changed


def drift(rendered: Mapping[str, Rendered], out_dir: Path) -> list[str]:
    """One line for every file that is missing, differs from `rendered`, or is a program
    its owner cannot execute. Only that bit counts: a checkout made with umask 002 has 0775
    programs and 0664 files, and they work the same."""
    problems = []
    for path, file in rendered.items():
        target = out_dir / path
        if not target.is_file():
            problems.append(f"{path}: missing")
        elif target.read_bytes() != file.data:
            problems.append(f"{path}: differs from a fresh render")
        elif _lost_x(target, file):
            problems.append(
                f"{path}: not executable (it is run as a program); "
                f"fix it with `chmod +x {path}` or `configgen render`"
            )
    return problems


def _lost_x(target: Path, file: Rendered) -> bool:
    """Whether `target` should be a program but its owner may not execute it."""
    return bool(file.mode & 0o100) and not target.stat().st_mode & 0o100
