"""A database that restarts: an index run and a reader ride out a real PostgreSQL server stopped with
`pg_ctl -m immediate stop` and started again; past the retry bound, one line says what to do."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from indexer.indexing.pipeline import IndexOptions, index_paths
from indexer.settings import load_settings
from indexer.store.archive import Archive
from indexer.store.db.retry import DatabaseUnavailable, transient
from mplug2 import load_model_bundle
from tests.pg_server import PostgresServer, create_database, start_postgres


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A server of this test's own (it is stopped and restarted: the session's shared one must stay up)."""
    server, reason = start_postgres()
    if server is None:
        pytest.skip(reason)
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.postgres
def test_an_index_run_rides_out_a_postgres_restart(
    own_postgres: PostgresServer, archive_dir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    settings = load_settings(create_database(own_postgres, "restart"), tmp_path / "index")
    restarted = threading.Event()
    down: list[float] = []

    def restart_mid_run(progress: dict) -> None:
        if progress["done"] >= 2 and not down:
            own_postgres.halt()
            down.append(time.monotonic())
            threading.Timer(3.0, lambda: (own_postgres.resume(), restarted.set())).start()

    bundle = load_model_bundle(tiny_model_dir, with_fusion=False)
    summary = index_paths([archive_dir], settings, bundle, IndexOptions(progress=False), restart_mid_run)
    assert down and restarted.wait(60), "the server was stopped and started during the run"
    assert (summary.status, summary.indexed, summary.failed) == ("done", 17, 4)
    archive = Archive(settings)
    report = archive.verify()
    archive.close()
    assert report.ok, report.problems
    again = index_paths([archive_dir], settings, bundle, IndexOptions(progress=False))
    assert (again.indexed, again.unchanged) == (0, summary.seen)


@pytest.mark.postgres
def test_a_reader_waits_for_the_server_and_past_the_bound_says_so_in_one_line(
    own_postgres: PostgresServer, tmp_path: Path
) -> None:
    settings = load_settings(create_database(own_postgres, "bound"), tmp_path / "index", db_retry_s=1.5)
    archive = Archive(settings)
    own_postgres.halt()
    try:
        with pytest.raises(DatabaseUnavailable) as raised:
            archive.stats()
        message = str(raised.value)
        assert "\n" not in message and "unreachable for 2 s" in message and "--db-retry" in message
        assert "mplug2@127.0.0.1" in message
        archive.catalog.retry_s = 60
        threading.Timer(1.0, own_postgres.resume).start()
        assert archive.stats().catalog.clips_ready == 0  # answered once the server was back
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # already running again: resumed by the timer
            own_postgres.resume()
        archive.close()


def test_what_counts_as_worth_retrying() -> None:
    locked = OperationalError("UPDATE media", {}, sqlite3.OperationalError("database is locked"))
    full = OperationalError("INSERT", {}, sqlite3.OperationalError("database or disk is full"))
    syntax = OperationalError("SELEC", {}, sqlite3.OperationalError('near "SELEC": syntax error'))
    assert transient(locked, "sqlite:///x.sqlite")
    assert not transient(full, "sqlite:///x.sqlite"), "a full disk is not waited out"
    assert not transient(syntax, "sqlite:///x.sqlite")
    assert not transient(ValueError("no"), "postgresql+psycopg://u@h/db")
