"""`configgen htpasswd user ...`: the users nginx lets in, and telling running stacks."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from configgen import command, htpasswd, prompt, stack
from configgen.errors import CheckFailed
from configgen.targets.compose import reload as compose_reload
from configgen.targets.local import detached
from configgen.targets.local.data import DataDir


def _users(args: argparse.Namespace) -> tuple[stack.Stack, Path]:
    """The stack settings and the htpasswd file a `user` command works on.

    With --htpasswd and no stack file around, the default settings apply, so the command also
    works on a file outside any project.
    """
    if args.htpasswd and stack.discover(args.stack) is None:
        return stack.Stack(), Path(args.htpasswd)
    project = stack.find(args.stack)
    return project.stack, Path(args.htpasswd or command.shown(project.htpasswd))


def _new_password(args: argparse.Namespace, settings: stack.Stack) -> str:
    """Read, check and hash a new password for args.name."""
    password = prompt.read_password(
        f"New password for {args.name}", stdin=args.password_stdin, confirm=True
    )
    htpasswd.check_password(password, settings.auth.min_password_length)
    return htpasswd.hash_password(password, settings.auth.bcrypt_cost)


def _apply(args: argparse.Namespace) -> None:
    """After a users change: the local stack running from --data reads it at once (its nginx
    reads a copy of the file, configgen/targets/local/run_folder.py); with --reload, the
    running nginx (local and compose) also forget every check cached before it."""
    data = DataDir(Path(args.data))
    stack_file = stack.discover(args.stack)
    project = stack.read(stack_file) if stack_file else None
    if project:
        detached.refresh_users(project.htpasswd, data)
    if not args.reload:
        return
    reloaded = False
    if detached.reload_nginx(data):
        print(f"reloaded the nginx of the stack running from {data.root}")
        reloaded = True
    for name in compose_reload.reload_nginx(project) if project else []:
        print(f"reloaded the nginx container {name}")
        reloaded = True
    if not reloaded:
        print(f"no stack is running from {data.root} nor in Docker: nothing to reload")


def cmd_user_add(args: argparse.Namespace) -> None:
    settings, path = _users(args)
    htpasswd.check_can_add(path, args.name)
    htpasswd.add(path, args.name, _new_password(args, settings))
    print(f"added user {args.name} to {command.shown(path)}")
    _apply(args)


def cmd_user_passwd(args: argparse.Namespace) -> None:
    settings, path = _users(args)
    htpasswd.check_can_change(path, args.name)
    htpasswd.change(path, args.name, _new_password(args, settings))
    print(f"changed the password of {args.name} in {command.shown(path)}")
    _apply(args)


def cmd_user_remove(args: argparse.Namespace) -> None:
    _, path = _users(args)
    htpasswd.remove(path, args.name)
    print(f"removed user {args.name} from {command.shown(path)}")
    _apply(args)


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


def register(commands: command.Subcommands) -> None:
    tool = command.subcommand(commands, "htpasswd", "manage the users nginx lets in")
    user = command.subcommand(
        command.subcommands(tool),
        "user",
        "add, remove, change, list or verify users",
        description="Edit the htpasswd file (bcrypt) under an exclusive lock, replacing it "
        "atomically. Passwords are read from a hidden prompt or, with --password-stdin, from "
        "the first line of standard input; never from the command line.",
    )
    actions = command.subcommands(user)
    for name, func, summary, reads_password in (
        ("add", cmd_user_add, "add a user (asks for the password twice)", True),
        ("passwd", cmd_user_passwd, "change a user's password", True),
        ("remove", cmd_user_remove, "remove a user", False),
        ("verify", cmd_user_verify, "check a password (exit 0 if right, 1 if wrong)", True),
        ("list", cmd_user_list, "print the user names, one per line", False),
    ):
        action = command.subcommand(actions, name, summary, func)
        if name != "list":
            action.add_argument("name", metavar="NAME", help="the user name")
        action.add_argument(
            "--htpasswd",
            metavar="PATH",
            help="the htpasswd file (default: auth.htpasswd from the stack file)",
        )
        if name in ("add", "passwd", "remove"):
            action.add_argument(
                "--reload",
                action="store_true",
                help="reload the nginx of the stack running from --data, so the change "
                "takes effect at once",
            )
            command.data_option(action)
        if reads_password:
            action.add_argument(
                "--password-stdin",
                action="store_true",
                help="read the password from the first line of standard input",
            )
