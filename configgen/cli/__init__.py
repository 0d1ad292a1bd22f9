"""The `configgen` command line: one parser assembled from the shared commands (project,
users) and each target's own (configgen/targets/*/cli.py). The work is done elsewhere.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from configgen import __version__, command
from configgen.cli import project, users
from configgen.errors import ConfiggenError, UsageError
from configgen.targets.elastic_beanstalk import cli as elastic_beanstalk
from configgen.targets.heroku import cli as heroku
from configgen.targets.local import cli as local

COMMANDS = (project, local, elastic_beanstalk, heroku, users)  # in the order --help lists them


def build_parser() -> command.Parser:
    parser = command.Parser(
        prog="configgen",
        parents=[command.stack_option()],
        description="Generate and run a secure, self-hosted MLflow tracking stack "
        "(nginx with basic auth, MLflow, MySQL, an S3 object store) from one stack file.",
        epilog=command.EXIT_CODES,
    )
    parser.add_argument("--version", action="version", version=f"configgen {__version__}")
    commands = command.subcommands(parser)
    for module in COMMANDS:
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.stack = getattr(args, "stack", None)
    try:
        args.func(args)
    except ConfiggenError as err:
        return command.show_error(err)
    except KeyboardInterrupt:
        print("configgen: interrupted", file=sys.stderr)
        return 130
    except OSError as err:
        # What the checks could not foresee (a full disk, a read-only folder): still one line.
        where = f"{err.filename}: " if err.filename else ""
        print(f"configgen: {where}{err.strerror or err}", file=sys.stderr)
        return UsageError.exit_code
    return 0
