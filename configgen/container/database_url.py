"""Database URLs as SQLAlchemy, and so MLflow, will open them with the drivers the MLflow image
and `configgen[local]` install: psycopg2 for PostgreSQL, PyMySQL for MySQL and MariaDB.

A URL whose scheme names no driver gets it named (`with_driver`): SQLAlchemy's default moves.
Since SQLAlchemy 2.1, `postgresql://` means psycopg 3, which is not installed, so a plain
`postgresql://` fails with "No module named 'psycopg'"; `mysql://` has always meant MySQLdb.

A platform's `DATABASE_URL` (Heroku, Render, Railway, Fly.io and the like) is checked and
rewritten the same way (`sqlalchemy_url`): platforms hand out `postgres://...`, which
SQLAlchemy 1.4+ does not know at all, or `mysql://...`. Only the scheme changes: user,
password, host, port, database and query stay byte for byte what the platform gave, so
`postgres://u:p@postgres.internal/postgres` keeps its host and database names.

Errors name the variable, never its value: the URL holds the database password.
Standard library only: the MLflow image copies this file.
"""

from __future__ import annotations

import re

from configgen.errors import UsageError

# A scheme without a driver -> the one with the installed driver.
DRIVERS = {"postgresql": "postgresql+psycopg2", "mysql": "mysql+pymysql"}

# The scheme a platform may give (compared in lower case) -> the one SQLAlchemy gets.
SCHEMES = {
    "postgres": DRIVERS["postgresql"],
    "postgresql": DRIVERS["postgresql"],
    "postgres+psycopg2": "postgresql+psycopg2",
    "postgresql+psycopg2": "postgresql+psycopg2",
    "mysql": DRIVERS["mysql"],
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


def with_driver(uri: str) -> str:
    """`uri` with the installed driver named when its scheme names none (`postgresql://`,
    `mysql://`, in any case); any other URI as it is."""
    scheme, separator, rest = uri.partition("://")
    driver = DRIVERS.get(scheme.lower())
    return f"{driver}://{rest}" if separator and driver else uri
