"""The Heroku files `configgen render` writes at the project folder's root, where Heroku
looks for them: app.json (the Deploy button) and heroku.yml (the build, the release phase)."""

from __future__ import annotations

from configgen.render import Output
from configgen.stack import Project
from configgen.targets.heroku import settings

PACKAGE = __package__  # the templates/ folder beside this module


def outputs(project: Project) -> list[Output]:
    app_json = {"app_json": settings.app_json_text(project)}
    return [
        Output(settings.HEROKU_YML, "heroku.yml.j2", settings.heroku_yml_context(project), PACKAGE),
        Output(settings.APP_JSON, "app.json.j2", app_json, PACKAGE),
    ]
