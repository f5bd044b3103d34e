"""Shared pytest set-up: CPU-only, quiet torch threads, and skips for missing system tools."""

from __future__ import annotations

import os

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import itertools
from collections.abc import Iterator

import pytest

_database_numbers = itertools.count()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[object]:
    """A real PostgreSQL server for the whole session, or a skip saying why there is none."""
    from tests.pg_server import start_postgres

    server, reason = start_postgres()
    if server is None:
        pytest.skip(reason)
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A fresh, empty database URL: a SQLite file, then a database on the real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    from tests.pg_server import create_database

    server = request.getfixturevalue("postgres_server")
    return create_database(server, f"test_{next(_database_numbers)}")
