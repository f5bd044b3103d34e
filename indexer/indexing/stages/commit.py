"""Commit stage: the one writer of an index run. Everything it writes goes through `Archive`, in the archive's
order (begin a file, add its clips, store their vectors, commit or fail it), and it counts what happened.

A file commits once every request sent for it has come back and every clip it yielded is stored; a file with no
usable clip fails with the first error it met. A file can finish inside the batch flush its own decode result
triggered, so finishing is idempotent.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from indexer.indexing.stages.decode import FileJob, probe_facts
from indexer.indexing.stages.encode import PendingClip
from indexer.media.decode import DecodedSpan
from indexer.media.probe import MediaInfo
from indexer.store.archive import Archive
from indexer.store.db.records import FileStamp

log = logging.getLogger(__name__)


@dataclass
class IndexSummary:
    run_id: int
    status: str  # done | interrupted
    seen: int = 0
    indexed: int = 0
    unchanged: int = 0
    failed: int = 0
    removed: int = 0
    offline: int = 0  # files whose folder is gone: kept, not searchable
    reused: int = 0  # files found again (folder back, moved, copied): clips reused, nothing decoded or encoded
    clips: int = 0  # clips encoded
    clips_reused: int = 0
    clips_failed: int = 0
    compacted_bytes: int = 0  # space the automatic compaction gave back
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (path, code, message)
    timings: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    decoders: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # decode requests per backend used

    def counts(self) -> dict[str, int]:
        return {
            "seen": self.seen,
            "indexed": self.indexed,
            "unchanged": self.unchanged,
            "failed": self.failed,
            "removed": self.removed,
            "offline": self.offline,
            "reused": self.reused,
            "clips": self.clips,
            "clips_reused": self.clips_reused,
            "clips_failed": self.clips_failed,
            "compacted_bytes": self.compacted_bytes,
        }


class Committer:
    def __init__(self, archive: Archive, summary: IndexSummary, grid: int) -> None:
        self.archive = archive
        self.summary = summary
        self.grid = grid
        self.jobs: dict[int, FileJob] = {}

    def begin(self, path: str, root: str, stamp: FileStamp, info: MediaInfo) -> FileJob:
        media_id = self.archive.begin_file(path, root, stamp, probe_facts(info))
        job = FileJob(path, root, stamp, info, media_id)
        self.jobs[media_id] = job
        return job

    def fail(self, path: str, root: str, stamp: FileStamp, code: str, message: str) -> None:
        self.archive.fail_file(path, root, stamp, code, message)
        self.summary.failed += 1
        self.summary.failures.append((path, code, message))
        log.info("failed: %s", message)

    def add_clips(self, job: FileJob, decoded: list[tuple[float, float, DecodedSpan]]) -> list[PendingClip]:
        """Register a file's decoded clips as pending rows; returns them for encoding."""
        if not decoded:
            return []
        clip_ids = self.archive.add_clips(job.media_id, [(start, end, d.thumbnail) for start, end, d in decoded])
        job.clips_left += len(clip_ids)
        return [
            PendingClip(job.media_id, clip_id, job.kind, d.frames)  # type: ignore[arg-type]
            for clip_id, (_, _, d) in zip(clip_ids, decoded, strict=True)
        ]

    def store(self, clips: list[PendingClip], itc: np.ndarray, tokens: list[np.ndarray] | None) -> None:
        """A batch's vectors, durable; then each file whose last clip this was is committed."""
        self.archive.store_vectors(np.array([clip.clip_id for clip in clips], np.int64), itc, tokens, self.grid)
        for clip in clips:
            job = self.jobs[clip.media_id]
            job.ready.append(clip.clip_id)
            job.clips_left -= 1
            self.finish_if_done(job)

    def finish_if_done(self, job: FileJob) -> None:
        """Once every clip of a file is decoded and stored: commit it, or record why nothing could be used."""
        if job.requests_left or job.clips_left or job.finished:
            return
        job.finished = True
        self.jobs.pop(job.media_id, None)
        if job.ready:
            self.archive.commit_file(job.media_id, job.ready)
            self.summary.indexed += 1
            self.summary.clips += len(job.ready)
        else:
            first = job.errors[0] if job.errors else None
            message = str(first) if first else f"{job.path}: no clip could be decoded"
            self.fail(job.path, job.root, job.stamp, first.code if first else "corrupt", message)
