"""SQLAlchemy 2.0 typed declarative tables. The latest schema; `migrations.py` builds and upgrades to it."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, BigInteger, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utc_now() -> datetime:
    """The time a row records: UTC without tzinfo, as the DateTime columns store it."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


# SQLite gives a BIGINT primary key no rowid alias (so no autoincrement); plain INTEGER there, BIGINT elsewhere.
ClipId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class Root(Base):
    """A folder the user indexed. The UI serves files only from under these."""

    __tablename__ = "roots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String(4096), unique=True)
    added_at: Mapped[datetime] = mapped_column(DateTime)


class Media(Base):
    """One file on disk: its identity (path, size, mtime, content hash), what the probe found, and its status."""

    __tablename__ = "media"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String(4096), unique=True)
    root: Mapped[str] = mapped_column(String(4096), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime: Mapped[float] = mapped_column(Float)
    content_hash: Mapped[str | None] = mapped_column(String(64), index=True)  # index: schema v4
    kind: Mapped[str | None] = mapped_column(String(16))
    duration: Mapped[float | None] = mapped_column(Float)
    fps: Mapped[float | None] = mapped_column(Float)
    frame_count: Mapped[int | None] = mapped_column(Integer)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    codec: Mapped[str | None] = mapped_column(String(64))
    rotation: Mapped[int | None] = mapped_column(Integer)
    creation_time: Mapped[datetime | None] = mapped_column(DateTime)  # schema v2
    status: Mapped[str] = mapped_column(String(16), index=True)  # records.py: indexing, indexed, offline, ...
    error_code: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    indexed_at: Mapped[datetime | None] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class Clip(Base):
    """A time span of a media file (an image is one clip). Its id is the FAISS id; ids are never reused."""

    __tablename__ = "clips"
    __table_args__ = (Index("ix_clips_status", "status"), {"sqlite_autoincrement": True})  # index: schema v2

    id: Mapped[int] = mapped_column(ClipId, primary_key=True, autoincrement=True)
    media_id: Mapped[int] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"), index=True)
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16))


class Thumbnail(Base):
    """The JPEG of a clip's middle frame. In the database, so a crash can never leave a clip without its picture."""

    __tablename__ = "thumbnails"

    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id", ondelete="CASCADE"), primary_key=True)
    jpeg: Mapped[bytes] = mapped_column(LargeBinary)


class IndexRun(Base):
    __tablename__ = "index_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(512))
    preprocessing: Mapped[dict] = mapped_column(JSON)
    roots: Mapped[list] = mapped_column(JSON)
    counts: Mapped[dict] = mapped_column(JSON)
    timings: Mapped[dict] = mapped_column(JSON)


class ArchiveState(Base):
    """One row: `generation` grows in the same transaction as every change to the set of ready clips, so a reader
    learns whether anything changed from one primary-key lookup (schema v3)."""

    __tablename__ = "archive_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation: Mapped[int] = mapped_column(BigInteger)


class SchemaVersion(Base):
    __tablename__ = "schema_version"

    version: Mapped[int] = mapped_column(Integer, primary_key=True)
