"""A platform's `DATABASE_URL` (Heroku, Render, Railway, Fly.io and the like) as a URL that
SQLAlchemy, and so MLflow, accepts.

Platforms hand out `postgres://...` (SQLAlchemy 1.4+ only knows `postgresql://`) or
`mysql://...` (which would pick the MySQLdb driver, not the PyMySQL the image has). Only the
scheme is rewritten: user, password, host, port, database and query stay byte for byte what the
platform gave, so `postgres://u:p@postgres.internal/postgres` keeps its host and database names.

Errors name the variable, never its value: the URL holds the database password.
Standard library only: the MLflow image copies this file.
"""

from __future__ import annotations

import re

from configgen.errors import UsageError

# The scheme a platform may give (compared in lower case) -> the one SQLAlchemy gets.
SCHEMES = {
    "postgres": "postgresql",
    "postgresql": "postgresql",
    "postgres+psycopg2": "postgresql+psycopg2",
    "postgresql+psycopg2": "postgresql+psycopg2",
    "mysql": "mysql+pymysql",
    "mysql+pymysql": "mysql+pymysql",
}

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
# After "://", as SQLAlchemy splits it: USER[:PASSWORD]@ (a password holds no raw "@"), then
# the host: a bracketed IPv6 address or up to ":", "/", "?" or "#".
_HOST = re.compile(r"(?:[^:/@]*(?::[^@]*)?@)?(\[[^\]/?#]*\]|[^:/?#@]*)")
_FORM = "SCHEME://USER:PASSWORD@HOST:PORT/DATABASE"


def sqlalchemy_url(url: str, variable: str = "DATABASE_URL") -> str:
    """`url` with its scheme made the one SQLAlchemy needs; UsageError (naming `variable`, not
    showing the URL) when it is no database URL MLflow can use."""
    found = _SCHEME.match(url)
    if not found:
        raise UsageError(f"{variable}: not a database URL; expected {_FORM}")
    scheme = found[1]
    target = SCHEMES.get(scheme.lower())
    if target is None:
        # A well-formed scheme is no secret, and says what went wrong.
        shown = f"{scheme!r} " if len(scheme) <= 30 else ""
        raise UsageError(
            f"{variable}: the scheme {shown}is not a database MLflow can use here; expected "
            f"one of {', '.join(f'{s}://' for s in SCHEMES)}"
        )
    rest = url[found.end() :]
    host = _HOST.match(rest)[1]  # type: ignore[index]  # every part is optional: it matches
    if host in ("", "[]"):
        raise UsageError(f"{variable}: the URL names no host; expected {_FORM}")
    return f"{target}://{rest}"
