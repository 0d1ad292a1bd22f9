"""`mlflow db upgrade`, knowing a database that is ahead of this image: run in a process of its
own (it imports MLflow) by configgen/container/entrypoint.py, under the schema lock.

A database whose revision this MLflow does not know was migrated by a newer image: a rollback
(Heroku runs the release phase on rollbacks too). Upgrading cannot help and must not fail the
release, so it exits AHEAD and the caller decides. The URI comes from the environment, never
the command line, which `ps` shows to every user.
"""

from __future__ import annotations

import os
import sys

from configgen.container.server import BACKEND_STORE_VARIABLE

AHEAD = 3


def current_revision(uri: str) -> str | None:
    import sqlalchemy

    engine = sqlalchemy.create_engine(uri)
    try:
        with engine.connect() as conn:
            if not sqlalchemy.inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(sqlalchemy.text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()


def known_revisions(uri: str) -> set[str]:
    """Every schema revision this MLflow's migrations know (pinned by tests/test_platform.py:
    MLflow's alembic configuration is not public API)."""
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config

    script = ScriptDirectory.from_config(_get_alembic_config(uri))
    return {revision.revision for revision in script.walk_revisions()}


def main() -> int:
    uri = os.environ.pop(BACKEND_STORE_VARIABLE)
    current = current_revision(uri)
    if current is not None and current not in known_revisions(uri):
        print(f"the schema is at revision {current}, which this MLflow does not know: a newer "
              "image migrated it", flush=True)  # fmt: skip
        return AHEAD
    from mlflow.db import upgrade

    upgrade([uri], prog_name="mlflow db upgrade", standalone_mode=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
