"""`configgen render`: turn the stack file into the files the runners use.

Rendering is a pure function of the stack file: the same input gives byte-identical output, so
the repository can commit the render of its default stack file and `--check` can catch drift.
Templates are Jinja2 files inside the package; they substitute values computed in Python.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from configgen import compose, eb, nginx
from configgen.fileio import atomic_write
from configgen.stack import Project

FILE_MODE = 0o644
HOOK_MODE = 0o755  # Elastic Beanstalk's platform hooks are programs


@dataclass(frozen=True)
class Output:
    """One rendered file: its path under the output folder, its template, and the values."""

    path: str
    template: str
    context: Mapping[str, Any] = field(default_factory=dict)


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("configgen", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # noqa: S701 - these are config files, not HTML
    )


def nginx_outputs(project: Project, runtime: nginx.Runtime, folder: str) -> list[Output]:
    """nginx's main configuration for `runtime` and the shared fragments, under `folder`."""
    stack = project.stack
    fragment = nginx.fragment_context(stack)
    main = nginx.main_context(stack, runtime)
    return [
        Output(f"{folder}/{nginx.MAIN_CONF}", "nginx/nginx.conf.j2", main),
        Output(f"{folder}/{nginx.VERIFIER_CONF}", "nginx/nginx-verifier.conf.j2", main),
        Output(f"{folder}/mlflow-http.conf", "nginx/mlflow-http.conf.j2", fragment),
        Output(f"{folder}/mlflow-server.conf", "nginx/mlflow-server.conf.j2", fragment),
        Output(f"{folder}/mlflow-health.conf", "nginx/mlflow-health.conf.j2", fragment),
        Output(f"{folder}/mlflow-proxy.conf", "nginx/mlflow-proxy.conf.j2", fragment),
        Output(f"{folder}/mlflow-verifier.conf", "nginx/mlflow-verifier.conf.j2", fragment),
    ]


def eb_outputs(project: Project) -> list[Output]:
    """The Elastic Beanstalk files: Dockerrun.aws.json, .ebextensions/ and .platform/."""
    stack = project.stack
    runtime = eb.runtime(stack)
    fragment = nginx.fragment_context(stack)
    return [
        Output(eb.DOCKERRUN, "eb/Dockerrun.aws.json.j2", {"dockerrun": eb.dockerrun(stack)}),
        Output(eb.OPTIONS_FILE, "eb/mlflow.config.j2", eb.options_context(stack)),
        *(Output(path, template, fragment) for path, template in eb.NGINX_FILES.items()),
        Output(eb.EB_NGINX_FILE, "eb/nginx-http.conf.j2", nginx.main_context(stack, runtime)),
        *(
            Output(f"{folder}/{eb.HOOK_NAME}", "eb/users-hook.sh.j2", eb.hook_context(stack, phase))
            for folder, phase in eb.HOOK_PHASES.items()
        ),
    ]


def outputs(project: Project) -> list[Output]:
    """Every file `configgen render` writes, relative to the project folder."""
    return [
        *nginx_outputs(project, nginx.compose_runtime(project.stack), "nginx"),
        Output(compose.COMPOSE_FILE, "compose/production.yml.j2", compose.context(project)),
        Output(compose.ENV_FILE, "compose/env.j2", {"name": project.stack.name}),
        *eb_outputs(project),
    ]


def file_mode(path: str) -> int:
    return HOOK_MODE if eb.is_hook(path) else FILE_MODE


def render(project: Project, files: list[Output]) -> dict[str, bytes]:
    """Render `files`; each starts with a header naming the stack file it came from (JSON,
    which has no comments, excepted)."""
    env = _environment()
    source = project.relative(project.stack_file)
    header = (
        f"# Rendered by configgen from {source}: edit that file and run `configgen render`;\n"
        "# changes made here are overwritten."
    )
    return {
        out.path: env.get_template(out.template).render(header=header, **out.context).encode()
        for out in files
    }


def write(rendered: Mapping[str, bytes], out_dir: Path) -> list[str]:
    """Write the files that differ from what is on disk; return their paths."""
    changed = []
    for path, data in rendered.items():
        target = out_dir / path
        mode = file_mode(path)
        if target.is_file() and target.read_bytes() == data and _mode(target) == mode:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, data, mode)
        changed.append(path)
    return changed


def drift(rendered: Mapping[str, bytes], out_dir: Path) -> list[str]:
    """One line for every file that is missing or differs from `rendered`."""
    problems = []
    for path, data in rendered.items():
        target = out_dir / path
        if not target.is_file():
            problems.append(f"{path}: missing")
        elif target.read_bytes() != data:
            problems.append(f"{path}: differs from a fresh render")
        elif file_mode(path) == HOOK_MODE and _mode(target) != HOOK_MODE:
            problems.append(f"{path}: not executable (Elastic Beanstalk runs it as a program)")
    return problems


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777
