"""The Elastic Beanstalk files `configgen render` writes (Dockerrun.aws.json, .ebextensions/,
.platform/) and `configgen eb bundle` zips with the MLflow image's build context."""

from __future__ import annotations

from configgen import nginx
from configgen.render import Output
from configgen.stack import Project
from configgen.targets.elastic_beanstalk import settings

PACKAGE = __package__  # the templates/ folder beside this module


def outputs(project: Project) -> list[Output]:
    stack = project.stack
    fragment = nginx.fragment_context(stack)
    main = nginx.main_context(stack, settings.runtime(stack))
    dockerrun = {"dockerrun": settings.dockerrun(stack)}
    hooks = [
        Output(f"{folder}/{settings.HOOK_NAME}", "users-hook.sh.j2",
               settings.hook_context(stack, phase), PACKAGE, program=True)
        for folder, phase in settings.HOOK_PHASES.items()
    ]  # fmt: skip
    return [
        Output(settings.DOCKERRUN, "Dockerrun.aws.json.j2", dockerrun, PACKAGE),
        Output(settings.OPTIONS_FILE, "mlflow.config.j2", settings.options_context(stack), PACKAGE),
        *(Output(to, f"nginx/{name}.j2", fragment) for name, to in settings.NGINX_FILES.items()),
        Output(settings.EB_NGINX_FILE, "nginx-http.conf.j2", main, PACKAGE),
        *hooks,
    ]
