"""`configgen new`: a deployment project of its own, in an empty folder, outside any clone.

It holds the stack file (the package's copy of the repository's, comments and all), a
.gitignore that keeps secrets and data out and a README saying what to run next; the command
then renders the rest, so that the project is complete from the start. configgen itself is
upgraded with pip; `configgen render` then brings the rendered files up to date.
"""

from __future__ import annotations

from pathlib import Path

from configgen import __version__, stack
from configgen.errors import UsageError
from configgen.render import Output, render, write


def _scaffold(name: str) -> list[Output]:
    return [
        Output(stack.DEFAULT_STACK.as_posix(), copy="templates/project/stack.yaml"),
        Output(".gitignore", copy="templates/project/gitignore"),
        Output("README.md", "project/README.md.j2", {"name": name, "version": __version__}),
    ]


def check_empty(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder}: not a folder; `configgen new` makes a project in a new one")
    if folder.is_dir() and any(folder.iterdir()):
        raise UsageError(
            f"{folder}: not empty; `configgen new` makes a project in a new or empty folder "
            "(nothing was written)"
        )


def create(folder: Path) -> list[str]:
    """Write the scaffold into `folder` (new or empty); return the paths written."""
    check_empty(folder)
    folder.mkdir(parents=True, exist_ok=True)
    blank = stack.Project(folder / stack.DEFAULT_STACK, folder, stack.Stack())
    return write(render(blank, _scaffold(blank.stack.name)), folder)
