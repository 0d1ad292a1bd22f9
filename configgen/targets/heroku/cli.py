"""`configgen heroku check`."""

from __future__ import annotations

import argparse
import os

from configgen import command, stack
from configgen.targets.heroku import check, settings


def cmd_check(args: argparse.Namespace) -> None:
    project = stack.find(args.stack)
    found = check.check(project, os.environ)
    for note in found.warnings:
        command.warn(note)
    where = command.shown(project.root)
    command.report(
        found.problems,
        f"{where}: {command.count(found.problems, 'problem')}; Heroku would fail or misbehave "
        "with these files",
    )
    users = f", users in {found.users} bcrypt" if found.users else ", no users value to check"
    print(f"{where}: {settings.APP_JSON} and {settings.HEROKU_YML}: no problems found{users}")


def register(commands: command.Subcommands) -> None:
    heroku = command.subcommand(commands, "heroku", "check the Heroku files")
    actions = command.subcommands(heroku)
    command.subcommand(
        actions,
        "check",
        "check app.json, heroku.yml and the users offline",
        cmd_check,
        "Check the project's app.json (Heroku's app.json schema, stack container, no retired "
        "add-on plan, no value for MLFLOW_HTPASSWD, a known dyno size that WEB_CONCURRENCY "
        "fits), heroku.yml (the web Dockerfile exists and copies only from its own folder, a "
        "release phase) and the users value (the stack's users file, and $MLFLOW_HTPASSWD if "
        "set: bcrypt entries only), without Heroku. Exit code 1 with one line per problem; "
        "2 when app.json or heroku.yml is missing.",
    )
