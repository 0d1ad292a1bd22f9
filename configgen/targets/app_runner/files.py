"""The App Runner file `configgen render` writes: a CloudFormation template."""

from __future__ import annotations

from configgen.render import Output
from configgen.stack import Project
from configgen.targets.app_runner import settings

PACKAGE = __package__  # the templates/ folder beside this module


def outputs(project: Project) -> list[Output]:
    context = settings.context(project.stack)
    return [Output(settings.TEMPLATE_FILE, "app-runner.yaml.j2", context, PACKAGE)]
