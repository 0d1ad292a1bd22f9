"""`configgen htpasswd ... --reload` for the compose stack: its nginx forgets every cached
check, through the Docker Engine API."""

from __future__ import annotations

from typing import TYPE_CHECKING

from configgen import reload
from configgen.stack import Project

if TYPE_CHECKING:
    import docker


def _workers(container: docker.models.containers.Container) -> set[str]:
    listing = container.top(ps_args="-eo pid,args")
    return {p[0] for p in listing["Processes"] if "worker process" in p[-1]}


def reload_nginx(project: Project) -> list[str]:
    """SIGHUP to the running nginx containers of this stack's compose project, through the
    Docker Engine API; returns their names (none when Docker or the stack is not running)."""
    import docker
    from docker.errors import DockerException

    try:
        client = docker.from_env()
        containers = client.containers.list(
            filters={
                "label": [
                    f"com.docker.compose.project={project.stack.name}",
                    "com.docker.compose.service=nginx",
                ]
            }
        )
        for container in containers:
            reload.reload_and_wait(
                lambda c=container: _workers(c), lambda c=container: c.kill(signal="SIGHUP")
            )
    except DockerException:
        return []
    return [c.name for c in containers]
