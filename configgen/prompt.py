"""Reading a password: a hidden prompt on a terminal, or one line of standard input.

Never from the command line, where `ps` and the shell history would show it.
"""

from __future__ import annotations

import getpass
import sys

from configgen.errors import UsageError


def from_stdin() -> str:
    """The first line of standard input, without its line ending."""
    raw = sys.stdin.buffer.readline()
    if not raw:
        raise UsageError("--password-stdin: standard input is empty")
    try:
        line = raw.decode()
    except UnicodeDecodeError:
        raise UsageError("--password-stdin: the password is not UTF-8 text") from None
    return line.removesuffix("\n").removesuffix("\r")


def from_terminal(prompt: str, confirm: bool) -> str:
    """Ask on the terminal without echo; with `confirm`, ask twice and compare."""
    if not sys.stdin.isatty():
        raise UsageError("no terminal to ask for the password; pipe it in with --password-stdin")
    password = getpass.getpass(f"{prompt}: ")
    if confirm and getpass.getpass("Type it again: ") != password:
        raise UsageError("the two passwords differ; nothing was changed")
    return password


def read_password(prompt: str, *, stdin: bool, confirm: bool) -> str:
    return from_stdin() if stdin else from_terminal(prompt, confirm)
