"""Schema versions and the upgrade path: an ordered list of migrations, recorded in `schema_version`.

A fresh database runs every migration from the first, so a new and an upgraded database are built by the same
steps. Version 1 is frozen here as it shipped (its own Table definitions, never edited); later versions alter it.
`tests/db/test_migrations.py` checks that the result equals the ORM models in `models.py`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    text,
)

log = logging.getLogger(__name__)


def _v1_tables() -> MetaData:
    metadata = MetaData()
    clip_id = BigInteger().with_variant(Integer(), "sqlite")
    Table(
        "roots",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("path", String(4096), unique=True, nullable=False),
        Column("added_at", DateTime, nullable=False),
    )
    Table(
        "media",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("path", String(4096), unique=True, nullable=False),
        Column("root", String(4096), nullable=False, index=True),
        Column("size", BigInteger, nullable=False),
        Column("mtime", Float, nullable=False),
        Column("content_hash", String(64)),
        Column("kind", String(16)),
        Column("duration", Float),
        Column("fps", Float),
        Column("frame_count", Integer),
        Column("width", Integer),
        Column("height", Integer),
        Column("codec", String(64)),
        Column("rotation", Integer),
        Column("status", String(16), nullable=False, index=True),
        Column("error_code", String(32)),
        Column("error", Text),
        Column("indexed_at", DateTime),
        Column("updated_at", DateTime, nullable=False),
    )
    Table(
        "clips",
        metadata,
        Column("id", clip_id, primary_key=True, autoincrement=True),
        Column("media_id", Integer, ForeignKey("media.id", ondelete="CASCADE"), nullable=False, index=True),
        Column("start", Float, nullable=False),
        Column("end", Float, nullable=False),
        Column("status", String(16), nullable=False),
        sqlite_autoincrement=True,
    )
    Table(
        "thumbnails",
        metadata,
        Column("clip_id", clip_id, ForeignKey("clips.id", ondelete="CASCADE"), primary_key=True),
        Column("jpeg", LargeBinary, nullable=False),
    )
    Table(
        "index_runs",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("started_at", DateTime, nullable=False),
        Column("finished_at", DateTime),
        Column("status", String(16), nullable=False),
        Column("model", String(512), nullable=False),
        Column("preprocessing", JSON, nullable=False),
        Column("roots", JSON, nullable=False),
        Column("counts", JSON, nullable=False),
        Column("timings", JSON, nullable=False),
    )
    Table("schema_version", metadata, Column("version", Integer, primary_key=True))
    return metadata


def _v1_create(connection: Connection) -> None:
    _v1_tables().create_all(connection)


def _v2_creation_time_and_clip_status_index(connection: Connection) -> None:
    """v2: the file's own creation time (from its container), and an index for the ready-clip queries."""
    connection.execute(text("ALTER TABLE media ADD COLUMN creation_time TIMESTAMP"))
    clips = Table("clips", MetaData(), autoload_with=connection)
    Index("ix_clips_status", clips.c.status).create(connection)


def _v3_archive_generation(connection: Connection) -> None:
    """v3: a counter of changes to the ready clips (readers check it instead of scanning the clips)."""
    state = Table(
        "archive_state",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("generation", BigInteger, nullable=False),
    )
    state.create(connection)
    connection.execute(state.insert().values(id=1, generation=0))


def _v4_content_hash_index(connection: Connection) -> None:
    """v4: files looked up by content hash (a moved or copied file reuses its stored clips). Offline files and
    clips are new status values in the existing columns: an upgraded archive keeps every row as it was."""
    media = Table("media", MetaData(), autoload_with=connection)
    Index("ix_media_content_hash", media.c.content_hash).create(connection)


MIGRATIONS: list[Callable[[Connection], None]] = [
    _v1_create,
    _v2_creation_time_and_clip_status_index,
    _v3_archive_generation,
    _v4_content_hash_index,
]
LATEST_VERSION = len(MIGRATIONS)


def current_version(connection: Connection) -> int:
    if not inspect(connection).has_table("schema_version"):
        return 0
    return connection.execute(text("SELECT MAX(version) FROM schema_version")).scalar() or 0


def upgrade(engine: Engine, target: int = LATEST_VERSION) -> int:
    """Bring the database to `target`, one migration per transaction. Returns the version reached."""
    with engine.connect() as connection:
        version = current_version(connection)
    if version > LATEST_VERSION:
        raise RuntimeError(
            f"the database is at schema version {version}, newer than this mplug2-search ({LATEST_VERSION}): "
            "upgrade mplug2-search"
        )
    for number in range(version + 1, target + 1):
        log.info("upgrading the database schema to version %d", number)
        with engine.begin() as connection:
            MIGRATIONS[number - 1](connection)
            connection.execute(text("INSERT INTO schema_version (version) VALUES (:v)"), {"v": number})
    return max(version, target)
