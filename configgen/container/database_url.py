"""DATABASE_URL as SQLAlchemy takes it. (A first version: the PostgreSQL work replaces it.)"""

from urllib.parse import urlsplit

from configgen.errors import UsageError


def sqlalchemy_url(url: str, variable: str = "DATABASE_URL") -> str:
    scheme, sep, rest = url.partition("://")
    low = scheme.lower()
    mapped = {"postgres": "postgresql", "mysql": "mysql+pymysql"}.get(low, low)
    if not sep or mapped not in ("postgresql", "postgresql+psycopg2", "mysql+pymysql"):
        raise UsageError(f"{variable}: expected a postgres:// or mysql:// URL")
    if not urlsplit(url).hostname:
        raise UsageError(f"{variable}: names no host")
    return f"{mapped}://{rest}"
