"""Opening a database: the SQLAlchemy engine for a URL (SQLite in WAL mode with a busy timeout and foreign keys,
PostgreSQL with connections checked before use, so a restarted server costs a reconnect) and the one line that says
why a URL cannot be opened."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

_SQLITE_BUSY_TIMEOUT_S = 60


def open_failure(url: str, error: Exception) -> str:
    """One line: which database, what is wrong with it, what to do (the password never printed)."""
    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return f"--db {url[:200]!r} is not a database URL: give sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
    if isinstance(error, (NoSuchModuleError, ImportError)):
        module = getattr(error, "name", None) or str(error).split(":")[-1].strip()
        return (
            f"--db {shown}: the database driver {module} is not installed; install it (PostgreSQL: "
            "pip install 'mplug2-search[postgres]' and a postgresql+psycopg:// URL)"
        )
    reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0][:200]
    if url.startswith("sqlite"):
        path = Path(url.split("///", 1)[-1])
        if path.is_dir():
            return f"--db {shown} is a folder, not a database file: give sqlite:///{path / 'catalog.sqlite'}"
        if "not a database" in reason:
            return f"--db {shown}: {path} is not a SQLite database ({reason}); give a new file path or a catalog"
        return f"--db {shown}: cannot open {path} ({reason}); check that its folder is writable"
    return f"--db {shown}: cannot connect ({reason}); check the server is running and the URL"


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        database = url.split("///", 1)[-1]
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": _SQLITE_BUSY_TIMEOUT_S})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(connection, _record) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a killed process loses nothing committed
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)
