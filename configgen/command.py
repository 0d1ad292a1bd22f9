"""The pieces every `configgen` subcommand is built from (configgen/cli/ and each target's
cli.py): the parser that errs in one line, the shared options, and how results are shown.

Exit codes: 0 success, 1 a check found problems, 2 bad input or usage. Errors are one line on
stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from configgen import stack, tls
from configgen.errors import CheckFailed, ConfiggenError

EXIT_CODES = "exit codes: 0 success, 1 a check found problems, 2 bad input or usage"
Subcommands = argparse._SubParsersAction


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line that points at --help."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def shown(path: Path) -> str:
    """A path as short as possible for messages: relative to the current folder if inside."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def say(message: str) -> None:
    print(message, flush=True)


def warn(message: str) -> None:
    print(f"configgen: warning: {message}", file=sys.stderr)


def show_error(err: ConfiggenError) -> int:
    """An error as the user sees it: its details, then one line; returns its exit code."""
    for line in err.details:
        print(f"  | {line}", file=sys.stderr)
    print(f"configgen: {err}", file=sys.stderr)
    return err.exit_code


def report(problems: list[str], summary: str) -> None:
    """A check's findings, one per line on stdout; with any, fail (exit 1) with `summary`."""
    for line in problems:
        print(line)
    if problems:
        raise CheckFailed(summary)


def count(items: Sequence[object], noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def warn_tls_off(project: stack.Project) -> None:
    if project.stack.tls.mode == "off":
        warn(tls.OFF_WARNING)


def stack_option() -> argparse.ArgumentParser:
    # SUPPRESS lets --stack go before or after the subcommand without one hiding the other.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--stack",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help=f"the stack file (default: ${stack.STACK_ENV}, else {stack.DEFAULT_STACK} "
        "in this folder or the nearest parent)",
    )
    return common


def subcommand(
    group: Subcommands,
    name: str,
    summary: str,
    func: Callable[[argparse.Namespace], None] | None = None,
    description: str | None = None,
) -> argparse.ArgumentParser:
    sub = group.add_parser(
        name,
        parents=[stack_option()],
        help=summary,
        description=description or summary,
        epilog=EXIT_CODES,
    )
    if func:
        sub.set_defaults(func=func)
    return sub


def subcommands(parser: argparse.ArgumentParser) -> Subcommands:
    return parser.add_subparsers(title="commands", metavar="COMMAND", required=True)


def port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 1 to 65535, got {text!r}")
    return int(text)


def data_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", default="data", metavar="DIR",
        help="the local stack's data folder (default: ./data)",
    )  # fmt: skip
