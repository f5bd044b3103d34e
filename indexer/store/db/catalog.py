"""The one access layer to the metadata database. Callers get plain records; sessions never leave this module.

One process writes (an index run) while others read (searches, the UI). SQLite runs in WAL mode with a busy
timeout so readers see the last committed state and never block the writer; every multi-row change is a single
transaction, so a process killed at any moment leaves the previous consistent state.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import fields
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import ArgumentError, DatabaseError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from indexer.settings import DB_RETRY_S
from indexer.store.db import migrations
from indexer.store.db.engine import make_engine, open_failure
from indexer.store.db.models import ArchiveState, Clip, Media, Root, Thumbnail, utc_now
from indexer.store.db.records import (
    CLIP_OFFLINE,
    CLIP_PENDING,
    CLIP_READY,
    FAILED,
    INDEXED,
    INDEXING,
    KEPT_CLIPS,
    MISSING,
    OFFLINE,
    CatalogStats,
    ClipRecord,
    FileCount,
    FileStamp,
    MediaRecord,
    ProbeFacts,
    SearchFilters,
)
from indexer.store.db.retry import retrying_methods
from indexer.store.db.run_log import RunLog

_IN_LIST_SIZE = 900  # ids bound in one `IN (...)` list: under SQLite's bound-parameter limit (999 in old builds)


class CatalogError(RuntimeError):
    """The database URL cannot be opened; the message says what it is and what to give instead."""


@retrying_methods
class Catalog(RunLog):
    """Files, clips, roots and index runs (`RunLog`). `url` is any SQLAlchemy URL (SQLite file by default). Every public
    method is one transaction, retried for up to `retry_s` seconds while the database is away (`retry.py`)."""

    def __init__(self, url: str, retry_s: float = DB_RETRY_S) -> None:
        self.url = url
        self.retry_s = retry_s
        try:
            self.engine = make_engine(url)
            migrations.upgrade(self.engine)
        except (ArgumentError, NoSuchModuleError, ImportError, OperationalError, DatabaseError, OSError) as error:
            # At open time each of these means the URL does not lead to a usable database: the user's to fix.
            raise CatalogError(open_failure(url, error)) from error
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    def _session(self) -> Session:
        return self._sessions()

    # roots

    def add_root(self, path: str | Path) -> str:
        resolved = str(Path(path).resolve())
        with self._session() as session, session.begin():
            if session.scalar(select(Root.id).where(Root.path == resolved)) is None:
                session.add(Root(path=resolved, added_at=utc_now()))
        return resolved

    def roots(self) -> list[str]:
        with self._session() as session:
            return list(session.scalars(select(Root.path).order_by(Root.path)))

    def is_under_root(self, path: str | Path) -> bool:
        """Whether `path`, with every symbolic link resolved, lies inside an indexed root."""
        resolved = os.path.realpath(path)
        return any(resolved == root or resolved.startswith(root.rstrip(os.sep) + os.sep) for root in self.roots())

    # media

    def media_by_path(self, path: str) -> MediaRecord | None:
        with self._session() as session:
            row = session.scalar(select(Media).where(Media.path == path))
            return _media_record(row) if row else None

    def media_under(self, root: str) -> list[MediaRecord]:
        with self._session() as session:
            rows = session.scalars(select(Media).where(Media.root == root).order_by(Media.path))
            return [_media_record(row) for row in rows]

    def media_by_status(self, status: str) -> list[MediaRecord]:
        with self._session() as session:
            return [_media_record(r) for r in session.scalars(select(Media).where(Media.status == status))]

    def begin_media(self, path: str, root: str, stamp: FileStamp, facts: ProbeFacts) -> tuple[int, list[int]]:
        """Mark a file as being (re)indexed: status `indexing`, its probe facts stored, its old clips dropped.

        Returns the media id and the ids of the clips it had (to drop from the vector index and feature store).
        """
        with self._session() as session, session.begin():
            row, old_clip_ids = _reset_media(session, path, root, stamp, INDEXING)
            row.kind, row.duration, row.fps, row.frame_count = facts.kind, facts.duration, facts.fps, facts.frame_count
            row.width, row.height, row.codec, row.rotation = facts.width, facts.height, facts.codec, facts.rotation
            row.creation_time = facts.creation_time
            row.error_code, row.error = None, None
            return row.id, old_clip_ids

    def add_clips(self, media_id: int, spans: Sequence[tuple[float, float, bytes | None]]) -> list[int]:
        """Insert pending clips (start, end, thumbnail JPEG) for a file; returns their new ids, in order."""
        with self._session() as session, session.begin():
            clips = [Clip(media_id=media_id, start=start, end=end, status=CLIP_PENDING) for start, end, _ in spans]
            session.add_all(clips)
            session.flush()
            session.add_all(
                Thumbnail(clip_id=clip.id, jpeg=jpeg) for clip, (_, _, jpeg) in zip(clips, spans, strict=True) if jpeg
            )
            return [clip.id for clip in clips]

    def commit_media(self, media_id: int, ready_clip_ids: Iterable[int]) -> None:
        """The file's vectors are durable: its clips become searchable and the file `indexed`, in one transaction."""
        ready = list(ready_clip_ids)
        with self._session() as session, session.begin():
            if ready:
                session.execute(update(Clip).where(Clip.id.in_(ready)).values(status=CLIP_READY))
            session.execute(delete(Clip).where(Clip.media_id == media_id, Clip.status == CLIP_PENDING))
            now = utc_now()
            session.execute(
                update(Media).where(Media.id == media_id).values(status=INDEXED, indexed_at=now, updated_at=now)
            )
            _bump_generation(session)

    def fail_media(self, path: str, root: str, stamp: FileStamp, code: str, message: str) -> list[int]:
        """Record a file that could not be indexed; drops any clips it had. Returns their ids."""
        with self._session() as session, session.begin():
            row, old_clip_ids = _reset_media(session, path, root, stamp, FAILED)
            row.error_code, row.error = code, message
            return old_clip_ids

    def touch_media(self, media_id: int, mtime: float) -> None:
        """A file whose mtime changed but whose content did not: remember the new mtime, keep everything else."""
        with self._session() as session, session.begin():
            session.execute(update(Media).where(Media.id == media_id).values(mtime=mtime, updated_at=utc_now()))

    def mark_missing(self, media_ids: Iterable[int]) -> list[int]:
        """Files gone from disk: status `missing`, clips removed. Returns the removed clip ids."""
        ids = list(media_ids)
        if not ids:
            return []
        with self._session() as session, session.begin():
            clip_ids = list(session.scalars(select(Clip.id).where(Clip.media_id.in_(ids))))
            session.execute(delete(Clip).where(Clip.media_id.in_(ids)))
            session.execute(update(Media).where(Media.id.in_(ids)).values(status=MISSING, updated_at=utc_now()))
            _bump_generation(session)
            return clip_ids

    def requeue_media_of(self, clip_ids: Sequence[int]) -> list[MediaRecord]:
        """The indexed files owning these clips, put back as an interrupted run leaves a file (`indexing`, its clips
        pending), so that the next plan encodes them again. Returns the files as they were."""
        with self._session() as session, session.begin():
            media_ids: set[int] = set()
            for chunk in _chunks([int(i) for i in clip_ids]):
                media_ids.update(session.scalars(select(Clip.media_id).where(Clip.id.in_(chunk))))
            rows = [
                _media_record(row)
                for chunk in _chunks(sorted(media_ids))
                for row in session.scalars(select(Media).where(Media.id.in_(chunk), Media.status == INDEXED))
            ]
            for chunk in _chunks([row.id for row in rows]):
                session.execute(update(Clip).where(Clip.media_id.in_(chunk)).values(status=CLIP_PENDING))
                session.execute(update(Media).where(Media.id.in_(chunk)).values(status=INDEXING, updated_at=utc_now()))
            if rows:
                _bump_generation(session)
            return rows

    def discard_pending(self, media_id: int) -> list[int]:
        """Drop the pending clips of an interrupted file; returns their ids."""
        with self._session() as session, session.begin():
            ids = list(session.scalars(select(Clip.id).where(Clip.media_id == media_id, Clip.status == CLIP_PENDING)))
            session.execute(delete(Clip).where(Clip.id.in_(ids)))
            return ids

    def media_inside(self, folder: str) -> list[MediaRecord]:
        """Every file whose path lies inside `folder`, whichever root it was indexed under."""
        prefix = folder.rstrip(os.sep) + os.sep
        with self._session() as session:
            query = select(Media).where(Media.path.startswith(prefix, autoescape=True)).order_by(Media.path)
            return [_media_record(row) for row in session.scalars(query)]

    def set_offline(self, media_ids: Iterable[int]) -> int:
        """Files whose folder is gone: `offline`, their clips kept (vectors too) but not searchable. Returns how
        many clips went offline."""
        ids = list(media_ids)
        if not ids:
            return 0
        with self._session() as session, session.begin():
            clips = update(Clip).where(Clip.media_id.in_(ids), Clip.status == CLIP_READY).values(status=CLIP_OFFLINE)
            count = session.execute(clips).rowcount
            session.execute(update(Media).where(Media.id.in_(ids)).values(status=OFFLINE, updated_at=utc_now()))
            _bump_generation(session)
            return count

    def set_online(self, media_id: int, path: str, root: str, stamp: FileStamp) -> list[int]:
        """A stored file seen again, where it was (its folder is back) or at a new path (moved): `indexed`, its
        clips searchable, nothing re-encoded. A row already at the new path is replaced; returns its clip ids."""
        with self._session() as session, session.begin():
            other = session.scalar(select(Media).where(Media.path == path, Media.id != media_id))
            dropped = []
            if other is not None:
                dropped = list(session.scalars(select(Clip.id).where(Clip.media_id == other.id)))
                session.delete(other)
                session.flush()
            clips = update(Clip).where(Clip.media_id == media_id, Clip.status == CLIP_OFFLINE).values(status=CLIP_READY)
            session.execute(clips)
            session.execute(
                update(Media)
                .where(Media.id == media_id)
                .values(path=path, root=root, size=stamp.size, mtime=stamp.mtime, status=INDEXED, updated_at=utc_now())
            )
            _bump_generation(session)
            return dropped

    def copy_media(
        self, source_id: int, path: str, root: str, stamp: FileStamp
    ) -> tuple[int, list[int], list[int], list[int]]:
        """A copy of a stored file at `path`: a row `indexing` with the source's probe facts, and pending clips
        (with their thumbnails) copying the source's. Returns (media id, source clip ids, new clip ids, the ids of
        clips a row at `path` had before), the clip lists in the same order."""
        with self._session() as session, session.begin():
            source = session.get(Media, source_id)
            row, dropped = _reset_media(session, path, root, stamp, INDEXING)
            for name in ("kind", "duration", "fps", "frame_count", "width", "height", "codec", "rotation"):
                setattr(row, name, getattr(source, name))
            row.creation_time, row.error_code, row.error = source.creation_time, None, None
            spans = session.execute(
                select(Clip.id, Clip.start, Clip.end)
                .where(Clip.media_id == source_id, Clip.status.in_(KEPT_CLIPS))
                .order_by(Clip.id)
            ).all()
            clips = [Clip(media_id=row.id, start=start, end=end, status=CLIP_PENDING) for _, start, end in spans]
            session.add_all(clips)
            session.flush()
            old = [clip_id for clip_id, _, _ in spans]
            jpegs = dict(
                session.execute(select(Thumbnail.clip_id, Thumbnail.jpeg).where(Thumbnail.clip_id.in_(old))).all()
            )
            session.add_all(
                Thumbnail(clip_id=new.id, jpeg=jpegs[source])
                for source, new in zip(old, clips, strict=True)
                if source in jpegs
            )
            return row.id, old, [clip.id for clip in clips], dropped

    def stored_sizes(self) -> set[int]:
        """The sizes of the files whose clips are kept (indexed or offline): a new file of another size cannot be a
        copy of one, so it needs no hash to tell."""
        with self._session() as session:
            return set(session.scalars(select(Media.size).where(Media.status.in_((INDEXED, OFFLINE))).distinct()))

    def media_with_hash(self, content_hash: str) -> list[MediaRecord]:
        """Files with kept clips and this content hash (indexed first, then offline)."""
        with self._session() as session:
            query = select(Media).where(Media.content_hash == content_hash, Media.status.in_((INDEXED, OFFLINE)))
            return [_media_record(row) for row in session.scalars(query.order_by(Media.status, Media.id))]

    def offline_folders(self) -> list[tuple[str, int]]:
        """Where the offline files are: (folder, files), most files first."""
        with self._session() as session:
            paths = list(session.scalars(select(Media.path).where(Media.status == OFFLINE)))
        counts: dict[str, int] = {}
        for path in paths:
            counts[os.path.dirname(path)] = counts.get(os.path.dirname(path), 0) + 1
        return sorted(counts.items(), key=lambda item: (-item[1], item[0]))

    # clips (reads for search and the UI)

    def clips(self, ids: Sequence[int]) -> list[ClipRecord]:
        """Ready clips by id, in the order asked; unknown or not-ready ids are left out."""
        wanted = [int(i) for i in ids if int(i) >= 0]
        if not wanted:
            return []
        by_id: dict[int, ClipRecord] = {}
        with self._session() as session:
            for chunk in _chunks(wanted):
                query = (
                    select(Clip, Media)
                    .join(Media, Clip.media_id == Media.id)
                    .where(Clip.id.in_(chunk), Clip.status == CLIP_READY)
                )
                for clip, media in session.execute(query):
                    by_id[clip.id] = ClipRecord(
                        id=clip.id,
                        media_id=media.id,
                        path=media.path,
                        kind=media.kind or "video",
                        start=clip.start,
                        end=clip.end,
                        media_duration=media.duration or 0.0,
                        mtime=media.mtime,
                        width=media.width or 0,
                        height=media.height or 0,
                    )
        return [by_id[i] for i in wanted if i in by_id]

    def clips_of_media(self, media_id: int) -> list[ClipRecord]:
        with self._session() as session:
            ids = list(session.scalars(select(Clip.id).where(Clip.media_id == media_id).order_by(Clip.start)))
        return self.clips(ids)

    def ready_clip_ids(self) -> np.ndarray:
        with self._session() as session:
            ids = session.scalars(select(Clip.id).where(Clip.status == CLIP_READY).order_by(Clip.id))
            return np.fromiter(ids, dtype=np.int64)

    def kept_clip_ids(self) -> np.ndarray:
        """Clips whose vectors the feature store must keep: the searchable ones and those of offline files."""
        with self._session() as session:
            ids = session.scalars(select(Clip.id).where(Clip.status.in_(KEPT_CLIPS)).order_by(Clip.id))
            return np.fromiter(ids, dtype=np.int64)

    def kept_clip_ids_of(self, media_id: int) -> list[int]:
        with self._session() as session:
            return list(session.scalars(select(Clip.id).where(Clip.media_id == media_id, Clip.status.in_(KEPT_CLIPS))))

    def generation(self) -> int:
        """A number that grows whenever the set of ready clips changes (a commit, a retired or re-indexed file): one
        primary-key lookup, so a searcher can ask before every query."""
        with self._session() as session:
            return int(session.scalar(select(ArchiveState.generation).where(ArchiveState.id == 1)) or 0)

    def clip_ids_matching(self, filters: SearchFilters) -> np.ndarray:
        """Ready clip ids whose file passes every filter (the allow-list for a filtered vector search)."""
        query = select(Clip.id).join(Media, Clip.media_id == Media.id).where(Clip.status == CLIP_READY)
        if filters.path_prefix:
            prefix = filters.path_prefix.rstrip(os.sep) + os.sep
            query = query.where(Media.path.startswith(prefix, autoescape=True))
        if filters.kinds:
            query = query.where(Media.kind.in_(filters.kinds))
        duration = func.coalesce(Media.duration, 0.0)
        if filters.min_duration is not None:
            query = query.where(duration >= filters.min_duration)
        if filters.max_duration is not None:
            query = query.where(duration <= filters.max_duration)
        if filters.modified_after is not None:
            query = query.where(Media.mtime >= _timestamp(filters.modified_after))
        if filters.modified_before is not None:
            query = query.where(Media.mtime < _timestamp(filters.modified_before))
        with self._session() as session:
            return np.fromiter(session.scalars(query.order_by(Clip.id)), dtype=np.int64)

    def thumbnail(self, clip_id: int) -> bytes | None:
        with self._session() as session:
            return session.scalar(select(Thumbnail.jpeg).where(Thumbnail.clip_id == int(clip_id)))

    # status

    def stats(self) -> CatalogStats:
        """Counts of files by kind and status, and of clips by state."""
        with self._session() as session:
            files = tuple(
                FileCount(kind or "unknown", status, count)
                for kind, status, count in session.execute(
                    select(Media.kind, Media.status, func.count())
                    .group_by(Media.kind, Media.status)
                    .order_by(Media.kind, Media.status)
                )
            )
            by_status = dict(session.execute(select(Clip.status, func.count()).group_by(Clip.status)).all())
        return CatalogStats(
            files, by_status.get(CLIP_READY, 0), by_status.get(CLIP_PENDING, 0), by_status.get(CLIP_OFFLINE, 0)
        )

    def failed_media(self) -> list[MediaRecord]:
        return self.media_by_status(FAILED)


def _chunks(values: list[int]) -> Iterable[list[int]]:
    """`values` in pieces small enough for one `IN (...)` list."""
    for start in range(0, len(values), _IN_LIST_SIZE):
        yield values[start : start + _IN_LIST_SIZE]


def _timestamp(moment: datetime) -> float:
    return moment.timestamp() if moment.tzinfo else moment.replace(tzinfo=timezone.utc).timestamp()


def _reset_media(session: Session, path: str, root: str, stamp: FileStamp, status: str) -> tuple[Media, list[int]]:
    """The file's row (created if new) with its clips dropped and its stamp and status set; the old clip ids."""
    row = session.scalar(select(Media).where(Media.path == path))
    if row is None:
        row = Media(path=path, root=root, size=stamp.size, mtime=stamp.mtime, status=status, updated_at=utc_now())
        session.add(row)
        session.flush()
    old_clip_ids = list(session.scalars(select(Clip.id).where(Clip.media_id == row.id)))
    session.execute(delete(Clip).where(Clip.media_id == row.id))
    if old_clip_ids:  # some may have been ready (a changed file): readers must look again
        _bump_generation(session)
    row.root, row.size, row.mtime, row.content_hash = root, stamp.size, stamp.mtime, stamp.content_hash
    row.status, row.updated_at = status, utc_now()
    return row, old_clip_ids


def _bump_generation(session: Session) -> None:
    """In the caller's transaction: the set of ready clips changes with it."""
    session.execute(update(ArchiveState).where(ArchiveState.id == 1).values(generation=ArchiveState.generation + 1))


def _media_record(row: Media) -> MediaRecord:
    return MediaRecord(**{field.name: getattr(row, field.name) for field in fields(MediaRecord)})
