"""Plain records handed out by the Catalog: the rest of the program never sees a session or an ORM object."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# Media statuses. `indexing` left behind by a crash means: redo this file. `offline`: its folder is gone (an
# unmounted disk, a share not connected); its clips are kept, not searchable, until the folder is back.
PENDING, INDEXING, INDEXED, FAILED, MISSING, OFFLINE = "pending", "indexing", "indexed", "failed", "missing", "offline"
# Clip statuses: `pending` rows exist before their vectors are durable; only `ready` clips are searchable;
# `offline` clips (of an offline file) keep their vectors and come back as `ready` without being encoded again.
CLIP_PENDING, CLIP_READY, CLIP_OFFLINE = "pending", "ready", "offline"
KEPT_CLIPS = (CLIP_READY, CLIP_OFFLINE)  # the clips whose vectors the feature store keeps


@dataclass(frozen=True)
class FileStamp:
    """How a file looked when it was read: what tells a later run whether it changed."""

    size: int
    mtime: float
    content_hash: str | None = None


@dataclass(frozen=True)
class ProbeFacts:
    """What indexing learned about a file, written with it."""

    kind: str
    duration: float
    fps: float
    frame_count: int
    width: int
    height: int
    codec: str
    rotation: int
    creation_time: datetime | None = None


@dataclass(frozen=True)
class MediaRecord:
    id: int
    path: str
    root: str
    size: int
    mtime: float
    content_hash: str | None
    kind: str | None
    duration: float | None
    fps: float | None
    width: int | None
    height: int | None
    codec: str | None
    rotation: int | None
    creation_time: datetime | None
    status: str
    error_code: str | None
    error: str | None
    indexed_at: datetime | None


@dataclass(frozen=True)
class ClipRecord:
    """A searchable clip with what a result needs to show about its file."""

    id: int
    media_id: int
    path: str
    kind: str
    start: float
    end: float
    media_duration: float
    mtime: float
    width: int
    height: int


@dataclass(frozen=True)
class RunRecord:
    id: int
    started_at: datetime
    finished_at: datetime | None
    status: str
    model: str
    preprocessing: dict
    roots: list
    counts: dict
    timings: dict


@dataclass(frozen=True)
class FileCount:
    kind: str  # video | image | unknown (failed before probing)
    status: str
    files: int


@dataclass(frozen=True)
class CatalogStats:
    """Files by kind and status, and clips by state."""

    files: tuple[FileCount, ...]
    clips_ready: int
    clips_pending: int
    clips_offline: int = 0

    def count(self, status: str | None = None, kind: str | None = None) -> int:
        """Files with this status and/or of this kind (None: any)."""
        return sum(c.files for c in self.files if status in (None, c.status) and kind in (None, c.kind))


@dataclass(frozen=True)
class SearchFilters:
    """Metadata filters applied inside the vector search. Durations are the file's (images count as 0 s);
    dates are the file's modification time."""

    path_prefix: str | None = None
    kinds: tuple[str, ...] | None = None
    min_duration: float | None = None
    max_duration: float | None = None
    modified_after: datetime | None = None
    modified_before: datetime | None = None

    def is_empty(self) -> bool:
        return all(value is None for value in vars(self).values())
