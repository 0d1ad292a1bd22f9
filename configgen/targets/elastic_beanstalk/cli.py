"""`configgen eb bundle` and `configgen eb check`."""

from __future__ import annotations

import argparse
from pathlib import Path

from configgen import command, stack
from configgen.errors import UsageError
from configgen.targets.elastic_beanstalk import bundle, check


def cmd_bundle(args: argparse.Namespace) -> None:
    made = bundle.make(stack.find(args.stack), Path(args.out) if args.out else None)
    for note in made.warnings:
        command.warn(note)
    out = command.shown(made.path)
    print(f"wrote {out} ({made.size / 1024:.0f} KB), checked with `configgen eb check`")
    print(
        f"deploy it: `eb deploy` with `deploy: artifact: {out}` in .elasticbeanstalk/config.yml,"
        " or upload it in the console (docs/elastic-beanstalk.md)"
    )


def cmd_check(args: argparse.Namespace) -> None:
    path = Path(args.zip)
    if not path.is_file():
        raise UsageError(f"{args.zip}: no such file")
    stack_file = stack.discover(args.stack)
    secrets = check.known_secrets(stack.read(stack_file)) if stack_file else []
    problems = check.check(path, secrets)
    command.report(
        problems,
        f"{args.zip}: {command.count(problems, 'problem')}; Elastic Beanstalk would fail or "
        "misbehave with this bundle",
    )
    scanned = f", no secret of {stack_file} inside" if stack_file else ""
    print(f"{args.zip}: no problems found{scanned}")


def register(commands: command.Subcommands) -> None:
    eb = command.subcommand(commands, "eb", "make and check Elastic Beanstalk bundles")
    actions = command.subcommands(eb)
    made = command.subcommand(
        actions,
        "bundle",
        "write the zip to upload to Elastic Beanstalk",
        cmd_bundle,
        "Write the source bundle for Elastic Beanstalk's Docker platform (Amazon Linux 2023): "
        "the MLflow image's Dockerfile and sources, Dockerrun.aws.json, .ebextensions/ and "
        ".platform/, rendered from the stack file. Refuses a stack that several instances "
        "would run wrongly (SQLite or non-S3 stores) or that has no users; checks the zip "
        "as `configgen eb check` does.",
    )
    made.add_argument("--out", metavar="ZIP", help="where to write it (default: dist/NAME-eb.zip)")
    checked = command.subcommand(
        actions,
        "check",
        "check a source bundle offline",
        cmd_check,
        "Check an Elastic Beanstalk source bundle without AWS: zip layout, .ebextensions "
        "YAML and option names, Dockerrun.aws.json v1, platform hooks (executable bit, #!, "
        "LF line endings), size, and (with a stack file) that none of its secrets is inside. "
        "Exit code 1 with one line per problem.",
    )
    checked.add_argument("zip", metavar="ZIP", help="the bundle")
