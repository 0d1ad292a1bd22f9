"""The users as a platform hands them over: the htpasswd file's content in one variable
(`MLFLOW_HTPASSWD`), checked before nginx sees it. Standard library only (the platform image
runs it), and shared with `configgen heroku check`.

Only bcrypt entries pass. nginx would accept apr1 (MD5), {SHA} and crypt() entries, and even
plain text: all of them fall to an offline guesser in minutes once the variable leaks.
Messages give the line number and what kind of entry it is, never the line itself.
"""

from __future__ import annotations

import re

from configgen.errors import UsageError

VARIABLE = "MLFLOW_HTPASSWD"
USER_NAME = re.compile(r"[^:\s#][^:\s]*")
BCRYPT = re.compile(r"\$2[aby]\$(0[4-9]|1[0-9]|2[0-9]|3[01])\$[./A-Za-z0-9]{53}")
FIX = "make the entries with `configgen htpasswd user add NAME` and use that file's content"


def _kind(hashed: str) -> str:
    """What a non-bcrypt hash is, for the message."""
    if hashed.startswith("$apr1$"):
        return "an apr1 (MD5) hash"
    if hashed.startswith("{SHA}"):
        return "a {SHA} (SHA-1) hash"
    if hashed.startswith(("$1$", "$5$", "$6$", "$y$")):
        return "a crypt() hash other than bcrypt"
    if hashed.startswith("$2"):
        return "a malformed bcrypt hash"
    if re.fullmatch(r"[./A-Za-z0-9]{13}", hashed):
        return "a DES crypt() hash"
    return "a plaintext password"


def check(text: str, variable: str = VARIABLE) -> list[str]:
    """The user names of an htpasswd text of bcrypt entries; UsageError for anything else.

    Lines may also be separated by spaces: a web form (the Deploy button's) keeps a pasted
    file on one line. Blank lines and # comments are skipped.
    """
    names: list[str] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        for entry in line.split():
            where = f"{variable}: line {number}"
            name, colon, hashed = entry.partition(":")
            if not colon or not USER_NAME.fullmatch(name) or not hashed:
                raise UsageError(f"{where}: not a NAME:HASH entry; {FIX}")
            if not BCRYPT.fullmatch(hashed):
                raise UsageError(f"{where}: {_kind(hashed)}, not bcrypt; {FIX}")
            if name in seen:
                raise UsageError(f"{where}: user {name!r} is already on line {seen[name]}")
            seen[name] = number
            names.append(name)
    if not names:
        raise UsageError(f"{variable}: no users; {FIX}")
    return names


def htpasswd_file(text: str, variable: str = VARIABLE) -> str:
    """The checked text as an htpasswd file nginx reads: one entry per line."""
    check(text, variable)
    entries = [e for line in text.splitlines() if not line.lstrip().startswith("#")
               for e in line.split()]  # fmt: skip
    return "\n".join(entries) + "\n"
