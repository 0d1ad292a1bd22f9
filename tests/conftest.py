"""Shared fixtures: a throw-away project folder and the real `configgen` command line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import servers, unprivileged
from tests.support import FAST_STACK, Configgen, clean_env, run_configgen


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder laid out like the repository, with a fast-bcrypt stack file."""
    (tmp_path / "stack").mkdir()
    (tmp_path / "stack" / "stack.yaml").write_text(FAST_STACK)
    return tmp_path


@pytest.fixture
def configgen(project: Path) -> Configgen:
    """`configgen ...` run in the project folder."""

    def call(*args: str, stdin: str | bytes | None = None, **env: str):
        return run_configgen(*args, cwd=project, stdin=stdin, env=clean_env(**env))

    return call


@pytest.fixture(scope="session")
def user_bin() -> Iterator[Path]:
    """The bin folder of the test user's own configgen installation (tests/unprivileged.py)."""
    folder = unprivileged.folder("user-venv-")
    try:
        yield unprivileged.install(folder)
    finally:
        unprivileged.remove(folder)


@pytest.fixture(scope="session")
def postgres() -> Iterator[servers.PostgreSQL]:
    """A real PostgreSQL server on loopback for the session (tests/servers.py)."""
    with servers.postgresql() as db:
        yield db
