"""Indexing: folders of media in, searchable clips out. Stages read → decode → encode → write, timed separately.

- read: walk the roots; a file is a candidate when its first bytes carry a media signature or its name a media
  extension (so a thousand README files cost no ffprobe, yet a text file named .mp4 is caught and reported);
  unchanged files (size + mtime, then content hash) are skipped; files gone from disk are retired.
- decode: probe, cut into clips, decode in the killable DecodePool (one request per file or per 32 clips).
- encode: batches of clips of one kind through the dual encoder (no fusion tower is loaded for indexing).
- write: vectors and re-rank tokens to a new feature-store shard, clip rows ready, the file `indexed`, the vectors
  into the index (saved every few batches and at the end).

Crash safety follows from the order of writes: a file becomes `indexing` with pending clip rows before its vectors
exist, and `indexed` (clips `ready`) only after its shard is durable. A kill at any moment leaves at most the files
in flight as `indexing`; the next run discards their pending clips (and any orphan vectors) and redoes them.
Ctrl-C stops feeding new files, finishes the batch in hand and saves. No bad file stops the run.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from indexer.archive import Archive, IndexLock
from indexer.db.records import FAILED, INDEXED, MISSING, MediaRecord, ProbeFacts
from indexer.media.decode import Backend, DecodeRequest, DecodeResult
from indexer.media.errors import MediaError
from indexer.media.probe import MediaInfo, MediaKind, check_readable, probe
from indexer.media.segment import SegmentPolicy, segment_video
from indexer.media.workers import DecodePool
from indexer.settings import Settings
from indexer.vectors import VectorIndex
from mplug2.bundle import ModelBundle

log = logging.getLogger(__name__)

MEDIA_EXTENSIONS = {
    ".mp4",
    ".m4v",
    ".mov",
    ".mkv",
    ".webm",
    ".avi",
    ".wmv",
    ".flv",
    ".mpg",
    ".mpeg",
    ".ts",
    ".mts",
    ".m2ts",
    ".3gp",
    ".ogv",
    ".jpg",
    ".jpeg",
    ".png",
    ".gif",
    ".bmp",
    ".tif",
    ".tiff",
    ".webp",
    ".heic",
}
_SIGNATURES = (
    b"\xff\xd8\xff",
    b"\x89PNG",
    b"GIF8",
    b"BM",
    b"II*\x00",
    b"MM\x00*",
    b"\x1a\x45\xdf\xa3",
    b"RIFF",
    b"FLV",
    b"OggS",
    b"\x00\x00\x01\xba",
    b"\x00\x00\x01\xb3",
    b"\x30\x26\xb2\x75",
)
MAX_SPANS_PER_REQUEST = 32


@dataclass
class IndexOptions:
    feature_mode: str = "full"
    feature_budget_mb: int | None = None
    factory: str | None = None  # None: keep the archive's (Flat for a new one)
    segment: SegmentPolicy = field(default_factory=SegmentPolicy)
    workers: int = 2
    decoder: Backend = "auto"  # auto (decord, then ffmpeg) or torchcodec (NVDEC on a GPU, then ffmpeg); see decode.py
    decode_timeout_s: float = 120.0
    decode_memory_mb: int = 4096
    batch_size: int = 16
    thumbnail_side: int = 320
    save_every_batches: int = 20
    retry_failed: bool = False
    progress: bool = True


@dataclass
class IndexSummary:
    run_id: int
    status: str  # done | interrupted
    seen: int = 0
    indexed: int = 0
    unchanged: int = 0
    failed: int = 0
    removed: int = 0
    clips: int = 0
    clips_failed: int = 0
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
            "clips": self.clips,
            "clips_failed": self.clips_failed,
        }


@dataclass
class _FileJob:
    path: str
    root: str
    size: int
    mtime: float
    content_hash: str
    info: MediaInfo
    media_id: int
    spans: list[tuple[float, float | None]]
    requests_left: int = 0
    clips_left: int = 0
    ready: list[int] = field(default_factory=list)
    errors: list[MediaError] = field(default_factory=list)
    finished: bool = False


@dataclass
class _Clip:
    job: _FileJob
    clip_id: int
    frames: np.ndarray


def content_hash(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def looks_like_media(path: Path) -> bool:
    if path.suffix.lower() in MEDIA_EXTENSIONS:
        return True
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError:
        return False
    return head.startswith(_SIGNATURES) or head[4:8] == b"ftyp"


def walk_media(root: Path, skip: set[Path]) -> Iterator[Path]:
    """Candidate media files under `root` (hidden folders and the index itself skipped; links not followed into
    folders, so a link loop cannot trap the walk; links to files are candidates and fail cleanly if broken)."""
    for folder, subfolders, files in os.walk(root, followlinks=False):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith(".") and Path(folder, d).resolve() not in skip)
        for name in sorted(files):
            path = Path(folder, name)
            if not name.startswith(".") and looks_like_media(path):
                yield path


class _StopFlag:
    """Ctrl-C (SIGINT) and SIGTERM ask the run to stop after the batch in flight; a second Ctrl-C stops at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> _StopFlag:
        if threading_is_main():
            for number in (signal.SIGINT, signal.SIGTERM):
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def _handle(self, number: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        log.warning("stopping after the batch in flight (press Ctrl-C again to stop at once)")

    def __exit__(self, *exc_info: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)  # type: ignore[arg-type]


def threading_is_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


class Indexer:
    def __init__(
        self,
        settings: Settings,
        bundle: ModelBundle,
        options: IndexOptions,
        on_progress: Callable[[dict], None] | None = None,
    ) -> None:
        self.settings = settings
        self.bundle = bundle
        self.options = options
        self.on_progress = on_progress
        budget = options.feature_budget_mb * (1 << 20) if options.feature_budget_mb else None
        self.archive = Archive(settings, options.feature_mode, budget)
        self.archive.bind_model(bundle.name, bundle.fingerprint, bundle.config.embed_dim, options.factory)
        self.catalog = self.archive.catalog
        self.store = self.archive.store
        self.summary = IndexSummary(run_id=0, status="running")
        self._buffers: dict[str, list[_Clip]] = {"video": [], "image": []}
        self._batches_since_save = 0
        self._failed_before_decode = 0
        self._jobs: dict[int, _FileJob] = {}
        self._index: VectorIndex | None = None

    # the run

    def run(self, paths: list[str | Path]) -> IndexSummary:
        with IndexLock(self.settings.index_dir), _StopFlag() as stop:
            return self._run(paths, stop)

    def _run(self, paths: list[str | Path], stop: _StopFlag) -> IndexSummary:
        from tqdm import tqdm

        roots = [Path(p).expanduser().resolve() for p in paths]
        for root in roots:
            if not root.exists():
                raise FileNotFoundError(f"{root}: no such folder or file to index")
        config = self.bundle.config
        preprocessing = {
            "image_size": config.image_size,
            "num_frames": config.preprocess.num_frames,
            "segment": vars(self.options.segment),
            "feature_mode": self.store.mode,
        }
        self.summary.run_id = self.catalog.start_run(self.bundle.name, preprocessing, [str(r) for r in roots])
        started = time.perf_counter()
        self.store.cleanup_temporary()
        self._recover_interrupted()
        self._index = self.archive.load_index()
        read_started = time.perf_counter()
        todo = self._plan(roots)
        self._failed_before_decode = self.summary.failed
        self.summary.timings["read"] += time.perf_counter() - read_started
        bar = tqdm(total=len(todo), unit="file", desc="indexing", disable=not self.options.progress)
        try:
            with DecodePool(
                self.options.workers,
                self.options.decode_timeout_s,
                self.options.decode_memory_mb,
                address_space_backstop=self.options.decoder != "torchcodec",  # it may open a CUDA context
            ) as pool:
                requests = self._requests(todo, stop)
                wait_started = time.perf_counter()
                for request, outcome in pool.imap(requests):
                    self.summary.timings["decode_wait"] += time.perf_counter() - wait_started
                    self._take(request, outcome)
                    self._report(bar, len(todo))
                    wait_started = time.perf_counter()
            self._flush_all()
            self._report(bar, len(todo))
        finally:
            bar.close()
            self._save_index()
            self.summary.status = "interrupted" if stop.requested else "done"
            self.summary.timings["total"] = time.perf_counter() - started
            timings = {k: round(v, 3) for k, v in self.summary.timings.items()}
            self.catalog.finish_run(self.summary.run_id, self.summary.status, self.summary.counts(), timings)
        return self.summary

    def _report(self, bar, total: int) -> None:
        done = self.summary.indexed + self.summary.failed - self._failed_before_decode
        bar.update(done - bar.n)  # a disabled bar counts nothing: progress is reported from `done`, not `bar.n`
        if self.on_progress is not None:
            self.on_progress({"done": done, "total": total, **self.summary.counts()})

    def _recover_interrupted(self) -> None:
        """Files an earlier run left `indexing`: drop their pending clips and any vectors stored for them."""
        for record in self.catalog.media_by_status("indexing"):
            self.catalog.discard_pending(record.id)
            log.info("redoing %s (an earlier run was interrupted while indexing it)", record.path)
        # With no pending clip left, every stored vector must belong to a ready clip. Others are orphans of a kill:
        # vectors written before their file committed, or old vectors of a changed file whose rows were replaced.
        orphans = np.setdiff1d(self.store.ids(), self.catalog.ready_clip_ids())
        if len(orphans):
            self.store.remove(orphans)
            log.info("dropped %d orphan vectors left by an interrupted run", len(orphans))

    # read

    def _plan(self, roots: list[Path]) -> list[tuple[Path, str, int, float]]:
        """Walk the roots; retire vanished files; return the files to (re)index."""
        todo = []
        skip = {self.settings.index_dir.resolve()}
        for root in roots:
            root_key = str(root if root.is_dir() else root.parent)
            self.catalog.add_root(root_key)
            known = {record.path: record for record in self.catalog.media_under(root_key)}
            seen: set[str] = set()
            candidates = walk_media(root, skip) if root.is_dir() else iter([root])
            for path in candidates:
                key = str(path)
                seen.add(key)
                self.summary.seen += 1
                try:
                    stat = os.stat(path)
                except OSError:
                    stat = None
                record = known.get(key)
                if stat is not None and record is not None and self._unchanged(record, path, stat):
                    self.summary.unchanged += 1
                    continue
                todo.append((path, root_key, stat.st_size if stat else 0, stat.st_mtime if stat else 0.0))
            if root.is_dir():
                gone = [
                    r.id
                    for path, r in known.items()
                    if path not in seen
                    and r.status != MISSING
                    and (path.startswith(str(root) + os.sep) or path == str(root))
                ]
                removed_clips = self.catalog.mark_missing(gone)
                self._forget(removed_clips)
                self.summary.removed += len(gone)
        return todo

    def _unchanged(self, record: MediaRecord, path: Path, stat: os.stat_result) -> bool:
        if record.status not in (INDEXED, FAILED):
            return False
        if record.status == FAILED and self.options.retry_failed:
            return False
        if record.size == stat.st_size and record.mtime == stat.st_mtime:
            return True
        if record.size == stat.st_size and record.content_hash:
            started = time.perf_counter()
            same = content_hash(path) == record.content_hash
            self.summary.timings["read"] += time.perf_counter() - started
            if same:  # touched, not changed: remember the new mtime and move on
                self.catalog.touch_media(record.id, stat.st_mtime)
                return True
        return False

    def _forget(self, clip_ids: list[int]) -> None:
        if clip_ids:
            self.store.remove(clip_ids)
            assert self._index is not None
            self._index.remove(np.array(clip_ids))

    # decode

    def _requests(self, todo, stop: _StopFlag) -> Iterator[DecodeRequest]:
        """Probe, register and cut each file, then hand its decode requests to the pool (lazily: the pool pulls the
        next file only when a worker is free, so Ctrl-C stops feeding at once). Requests carry the media id as their
        tag, never the job itself: a tag is pickled into the worker, which must not import this module (or torch)."""
        config = self.bundle.config
        for path, root, size, mtime in todo:
            if stop.requested:
                return
            job = self._begin(path, root, size, mtime)
            if job is None:
                continue
            self._jobs[job.media_id] = job
            image = job.info.kind is MediaKind.IMAGE
            preprocess = config.preprocess
            chunks = [job.spans[i : i + MAX_SPANS_PER_REQUEST] for i in range(0, len(job.spans), MAX_SPANS_PER_REQUEST)]
            job.requests_left = len(chunks)
            for chunk in chunks:
                yield DecodeRequest(
                    str(path),
                    spans=tuple(chunk),
                    num_frames=1 if image else preprocess.num_frames,
                    size=config.image_size,
                    interpolation=preprocess.image_interpolation if image else preprocess.video_interpolation,
                    thumbnail_side=self.options.thumbnail_side,
                    backend=self.options.decoder,
                    info=job.info,
                    tag=job.media_id,
                )

    def _begin(self, path: Path, root: str, size: int, mtime: float) -> _FileJob | None:
        started = time.perf_counter()
        try:
            check_readable(path)
            info = probe(path)
            digest = content_hash(path)
        except MediaError as error:
            self._fail(str(path), root, size, mtime, error.code, str(error))
            return None
        except OSError as error:  # vanished or unreadable between the walk and now
            self._fail(str(path), root, size, mtime, "unreadable", f"{path}: {error.strerror or error}")
            return None
        finally:
            self.summary.timings["probe"] += time.perf_counter() - started
        if info.kind is MediaKind.IMAGE:
            spans: list[tuple[float, float | None]] = [(0.0, None)]
        else:
            spans = [(s.start, s.end) for s in segment_video(str(path), info.duration, self.options.segment)]
        facts = ProbeFacts(
            info.kind.value,
            info.duration,
            info.fps,
            info.frame_count,
            info.width,
            info.height,
            info.codec,
            info.rotation,
            info.creation_time,
        )
        media_id, old_clips = self.catalog.begin_media(str(path), root, size, mtime, digest, facts)
        self._forget(old_clips)
        return _FileJob(str(path), root, size, mtime, digest, info, media_id, spans)

    def _fail(self, path: str, root: str, size: int, mtime: float, code: str, message: str) -> None:
        self._forget(self.catalog.fail_media(path, root, size, mtime, code, message))
        self.summary.failed += 1
        self.summary.failures.append((path, code, message))
        log.info("failed: %s", message)

    def _take(self, request: DecodeRequest, outcome: DecodeResult | MediaError) -> None:
        """A decoded request: register its clips and queue them for encoding."""
        job = self._jobs[request.tag]
        job.requests_left -= 1
        if isinstance(outcome, MediaError):
            job.errors.append(outcome)
        else:
            self.summary.timings["decode"] += outcome.seconds
            self.summary.decoders[outcome.backend] += 1
            good = [
                (span, decoded)
                for span, decoded in zip(request.spans, outcome.spans, strict=True)
                if decoded.frames is not None
            ]
            job.errors += [decoded.error for decoded in outcome.spans if decoded.error is not None]
            self.summary.clips_failed += len(outcome.spans) - len(good)
            if good:
                rows = [
                    (start, end if end is not None else job.info.duration, decoded.thumbnail)
                    for (start, end), decoded in good
                ]
                clip_ids = self.catalog.add_clips(job.media_id, rows)
                job.clips_left += len(clip_ids)
                kind = "image" if job.info.kind is MediaKind.IMAGE else "video"
                for clip_id, (_, decoded) in zip(clip_ids, good, strict=True):
                    self._buffers[kind].append(_Clip(job, clip_id, decoded.frames))
                    if len(self._buffers[kind]) >= self.options.batch_size:
                        self._flush(kind)
        self._maybe_finish(job)

    def _maybe_finish(self, job: _FileJob) -> None:
        """Once every clip of a file is decoded and written: commit it, or record why nothing could be used."""
        # A file can finish inside the batch flush that its own decode result triggered: count it only once.
        if job.requests_left or job.clips_left or job.finished:
            return
        job.finished = True
        self._jobs.pop(job.media_id, None)
        if job.ready:
            self.catalog.commit_media(job.media_id, job.ready)
            self.summary.indexed += 1
            self.summary.clips += len(job.ready)
        else:
            first = job.errors[0] if job.errors else None
            message = str(first) if first else f"{job.path}: no clip could be decoded"
            self._fail(job.path, job.root, job.size, job.mtime, first.code if first else "corrupt", message)

    # encode + write

    def _flush_all(self) -> None:
        for kind in ("video", "image"):
            if self._buffers[kind]:
                self._flush(kind)

    def _flush(self, kind: str) -> None:
        clips, self._buffers[kind] = self._buffers[kind], []
        started = time.perf_counter()
        frames = np.stack([clip.frames for clip in clips])
        output = self.bundle.encode_videos(frames) if kind == "video" else self.bundle.encode_images(frames[:, 0])
        feats = output.feat.cpu().numpy()
        tokens = [t for t in output.tokens.cpu().numpy()] if self.store.mode != "none" else None
        self.summary.timings["encode"] += time.perf_counter() - started
        started = time.perf_counter()
        ids = np.array([clip.clip_id for clip in clips], dtype=np.int64)
        self.store.write(ids, feats, tokens, self.bundle.config.vision.grid)
        assert self._index is not None
        self._index.add(ids, feats)
        for clip in clips:
            clip.job.ready.append(clip.clip_id)
            clip.job.clips_left -= 1
            self._maybe_finish(clip.job)
        self._batches_since_save += 1
        if self._batches_since_save >= self.options.save_every_batches:
            self._save_index()
        self.summary.timings["write"] += time.perf_counter() - started

    def _save_index(self) -> None:
        if self._index is not None:
            started = time.perf_counter()
            self.archive.save_index(self._index)
            self._batches_since_save = 0
            self.summary.timings["write"] += time.perf_counter() - started


def index_paths(
    paths: list[str | Path],
    settings: Settings,
    bundle: ModelBundle,
    options: IndexOptions | None = None,
    on_progress: Callable[[dict], None] | None = None,
) -> IndexSummary:
    """Index (or update) the archive under `paths`; see the module docstring."""
    indexer = Indexer(settings, bundle, options or IndexOptions(), on_progress)
    try:
        return indexer.run(paths)
    finally:
        indexer.archive.close()
