"""The `configgen` command line: argument parsing and messages over the modules that do the work.

Exit codes: 0 success, 1 a check found problems, 2 bad input or usage. Errors are one line on
stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from configgen import __version__, htpasswd, prompt, render, servicesecrets, stack
from configgen.errors import CheckFailed, ConfiggenError, UsageError

EXIT_CODES = "exit codes: 0 success, 1 a check found problems, 2 bad input or usage"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line that points at --help."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def _shown(path: Path) -> str:
    """A path as short as possible for messages: relative to the current folder if inside."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# -- init -------------------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> None:
    project = stack.find(args.stack)
    report = servicesecrets.init(project)
    for line in report:
        print(line)
    if not report:
        print("nothing to do: every secret already exists and .env lists them all")
    if not project.htpasswd.exists():
        print("next: add the first user with `configgen htpasswd user add NAME`")


# -- render -----------------------------------------------------------------------------------


def cmd_render(args: argparse.Namespace) -> None:
    project = stack.find(args.stack)
    out = Path(args.out) if args.out else project.root
    rendered = render.render(project, render.outputs(project))
    if args.check:
        problems = render.drift(rendered, out)
        for line in problems:
            print(line)
        if problems:
            raise CheckFailed(
                f"{len(problems)} of {len(rendered)} rendered files in {_shown(out)} differ from "
                "the stack file; run `configgen render` and commit the result"
            )
        print(f"all {len(rendered)} rendered files in {_shown(out)} match the stack file")
        return
    changed = render.write(rendered, out)
    for path in changed:
        print(f"wrote {_shown(out / path)}")
    if not changed:
        print(f"all {len(rendered)} rendered files in {_shown(out)} were already up to date")


# -- htpasswd user ... --------------------------------------------------------------------


def _users(args: argparse.Namespace) -> tuple[stack.Stack, Path]:
    """The stack settings and the htpasswd file a `user` command works on.

    With --htpasswd and no stack file around, the default settings apply, so the command also
    works on a file outside any project.
    """
    if args.htpasswd and stack.discover(args.stack) is None:
        return stack.Stack(), Path(args.htpasswd)
    project = stack.find(args.stack)
    return project.stack, Path(args.htpasswd or _shown(project.htpasswd))


def _new_password(args: argparse.Namespace, settings: stack.Stack) -> str:
    """Read, check and hash a new password for args.name."""
    password = prompt.read_password(
        f"New password for {args.name}", stdin=args.password_stdin, confirm=True
    )
    htpasswd.check_password(password, settings.auth.min_password_length)
    return htpasswd.hash_password(password, settings.auth.bcrypt_cost)


def cmd_user_add(args: argparse.Namespace) -> None:
    settings, path = _users(args)
    htpasswd.check_can_add(path, args.name)
    htpasswd.add(path, args.name, _new_password(args, settings))
    print(f"added user {args.name} to {_shown(path)}")


def cmd_user_passwd(args: argparse.Namespace) -> None:
    settings, path = _users(args)
    htpasswd.check_can_change(path, args.name)
    htpasswd.change(path, args.name, _new_password(args, settings))
    print(f"changed the password of {args.name} in {_shown(path)}")


def cmd_user_remove(args: argparse.Namespace) -> None:
    _, path = _users(args)
    htpasswd.remove(path, args.name)
    print(f"removed user {args.name} from {_shown(path)}")


def cmd_user_list(args: argparse.Namespace) -> None:
    _, path = _users(args)
    for name, scheme in htpasswd.entries(path):
        print(name)
        if scheme != "bcrypt":
            print(
                f"configgen: warning: {name} is stored as {scheme}, weaker than bcrypt; "
                f"reset it with `configgen htpasswd user passwd {name}`",
                file=sys.stderr,
            )


def cmd_user_verify(args: argparse.Namespace) -> None:
    _, path = _users(args)
    htpasswd.check_can_change(path, args.name)
    password = prompt.read_password(
        f"Password for {args.name}", stdin=args.password_stdin, confirm=False
    )
    if not htpasswd.verify(path, args.name, password):
        raise CheckFailed(f"wrong password for {args.name}")
    print(f"the password of {args.name} is correct")


# -- the parser -------------------------------------------------------------------------------


def _stack_option() -> argparse.ArgumentParser:
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


def _subcommand(
    group: argparse._SubParsersAction,
    name: str,
    summary: str,
    func: Callable[[argparse.Namespace], None] | None = None,
    description: str | None = None,
) -> argparse.ArgumentParser:
    sub = group.add_parser(
        name,
        parents=[_stack_option()],
        help=summary,
        description=description or summary,
        epilog=EXIT_CODES,
    )
    if func:
        sub.set_defaults(func=func)
    return sub


def _subcommands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    return parser.add_subparsers(title="commands", metavar="COMMAND", required=True)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="configgen",
        parents=[_stack_option()],
        description="Generate and run a secure, self-hosted MLflow tracking stack "
        "(nginx with basic auth, MLflow, MySQL, an S3 object store) from one stack file.",
        epilog=EXIT_CODES,
    )
    parser.add_argument("--version", action="version", version=f"configgen {__version__}")
    commands = _subcommands(parser)

    _subcommand(
        commands,
        "init",
        "create the service secrets and .env (idempotent)",
        cmd_init,
        "Create the secrets folder (0700) with generated service secrets (database root and "
        "user passwords, object-store keys), each in a 0600 file, and a .env for compose. "
        "Existing secrets are never overwritten. Set NAME or NAME_FILE in the environment "
        "(e.g. MYSQL_PASSWORD_FILE) to supply a value instead of generating it.",
    )

    render_cmd = _subcommand(
        commands,
        "render",
        "render nginx/ and the other runner files from the stack file",
        cmd_render,
        "Render the files the runners use from the stack file. The output is deterministic; "
        "with --check nothing is written and the exit code is 1 if any file differs from a "
        "fresh render.",
    )
    render_cmd.add_argument(
        "--out", metavar="DIR", help="write under DIR (default: the stack's project folder)"
    )
    render_cmd.add_argument("--check", action="store_true", help="compare instead of writing")

    tool = _subcommand(commands, "htpasswd", "manage the users nginx lets in")
    user = _subcommand(
        _subcommands(tool),
        "user",
        "add, remove, change, list or verify users",
        description="Edit the htpasswd file (bcrypt) under an exclusive lock, replacing it "
        "atomically. Passwords are read from a hidden prompt or, with --password-stdin, from "
        "the first line of standard input; never from the command line.",
    )
    actions = _subcommands(user)
    for name, func, summary, reads_password in (
        ("add", cmd_user_add, "add a user (asks for the password twice)", True),
        ("passwd", cmd_user_passwd, "change a user's password", True),
        ("remove", cmd_user_remove, "remove a user", False),
        ("verify", cmd_user_verify, "check a password (exit 0 if right, 1 if wrong)", True),
        ("list", cmd_user_list, "print the user names, one per line", False),
    ):
        action = _subcommand(actions, name, summary, func)
        if name != "list":
            action.add_argument("name", metavar="NAME", help="the user name")
        action.add_argument(
            "--htpasswd",
            metavar="PATH",
            help="the htpasswd file (default: auth.htpasswd from the stack file)",
        )
        if reads_password:
            action.add_argument(
                "--password-stdin",
                action="store_true",
                help="read the password from the first line of standard input",
            )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.stack = getattr(args, "stack", None)
    try:
        args.func(args)
    except ConfiggenError as err:
        print(f"configgen: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("configgen: interrupted", file=sys.stderr)
        return 130
    except OSError as err:
        # What the checks could not foresee (a full disk, a read-only folder): still one line.
        where = f"{err.filename}: " if err.filename else ""
        print(f"configgen: {where}{err.strerror or err}", file=sys.stderr)
        return UsageError.exit_code
    return 0
