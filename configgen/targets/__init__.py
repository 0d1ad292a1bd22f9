"""The deployment targets, one package each: what it renders, how it runs, what it refuses,
and its own subcommands. Shared pieces (configgen/*.py) import none of them.

- local/: `configgen up` and `down`, the stack as child processes of this machine;
- compose/: compose/production.yml and the nginx image, for one Docker host;
- elastic_beanstalk/: the files and the zip for Elastic Beanstalk's Docker platform;
- platform/: the platform image, one container for Heroku, AWS App Runner and the like;
- heroku/: app.json and heroku.yml for Heroku's container stack, and their check;
- app_runner/: a CloudFormation template for AWS App Runner and the platform image.
"""

from __future__ import annotations

from configgen.render import Output
from configgen.stack import Project
from configgen.targets.app_runner import files as app_runner_files
from configgen.targets.compose import files as compose_files
from configgen.targets.elastic_beanstalk import files as elastic_beanstalk_files
from configgen.targets.heroku import files as heroku_files
from configgen.targets.platform import files as platform_files

# The targets with files in the project folder, in the order `configgen render` lists them.
RENDERED = (
    compose_files, elastic_beanstalk_files, platform_files, heroku_files, app_runner_files
)


def outputs(project: Project) -> list[Output]:
    """Every file `configgen render` writes, relative to the project folder."""
    return [out for target in RENDERED for out in target.outputs(project)]
