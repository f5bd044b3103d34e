"""Indexing: folders of media in, searchable clips out. The stages (`indexer.indexing.stages`) run here in one process:

- walk: candidates under the roots; unchanged files skipped, vanished ones retired (`stages.walk`);
- decode: probe, cut into clips, decode in the killable `DecodePool`, shot detection included (`stages.decode`);
- encode: batches of clips of one kind through the dual encoder (`stages.encode`);
- commit: vectors and tokens to the feature store, clips ready, the file `indexed`, all through the archive
  (`stages.commit`); the index is saved every few batches and at the end.

Crash safety follows from the archive's order of writes (see `indexer.store.archive`): a kill at any moment leaves at
most the files in flight as `indexing`, and the next run redoes them. Ctrl-C stops feeding new files, finishes the
work in hand and saves. No bad file stops the run. Each stage is timed.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from indexer.indexing.options import IndexOptions
from indexer.indexing.stages.commit import Committer, IndexSummary
from indexer.indexing.stages.decode import clip_requests, decoded_clips, first_requests, read_file
from indexer.indexing.stages.encode import Batcher, PendingClip, encode_batch
from indexer.indexing.stages.walk import MEDIA_EXTENSIONS, Candidate, content_hash, looks_like_media, plan, walk_media
from indexer.media.decode import DecodeResult
from indexer.media.errors import MediaError
from indexer.media.probe import MediaInfo
from indexer.media.request import DecodeRequest
from indexer.media.segment import SegmentRequest, SegmentResult
from indexer.media.workers import DecodePool, Outcome, Request
from indexer.settings import Settings
from indexer.store.archive import Archive
from indexer.store.db.records import FileStamp
from indexer.store.errors import disk_full, stops_when_full
from indexer.store.runtime import serve
from mplug2.bundle import ModelBundle

__all__ = [
    "MEDIA_EXTENSIONS",
    "IndexOptions",
    "IndexSummary",
    "Indexer",
    "content_hash",
    "index_paths",
    "looks_like_media",
    "walk_media",
]

log = logging.getLogger(__name__)


class _StopFlag:
    """Ctrl-C (SIGINT) and SIGTERM ask the run to stop after the batch in flight; a second Ctrl-C stops at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
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


class _Feed:
    """The pool's request source: follow-ups first (a video's clips once its shots are known), then new files.
    The pool asks again after it ran dry, so follow-ups queued while results come in are never lost."""

    def __init__(self, files: Iterator[Request]) -> None:
        self.followups: deque[Request] = deque()
        self._files = files

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> Request:
        if self.followups:
            return self.followups.popleft()
        return next(self._files)


def existing_roots(paths: list[str | Path], archive: Archive) -> list[Path]:
    """The folders and files to index, resolved. One that does not exist stops the run before it starts, unless
    the archive holds files inside it (an unmounted disk): those go offline."""
    roots = [Path(p).expanduser().resolve() for p in paths]
    for root in roots:
        if not root.exists() and not archive.files_inside(str(root)):
            raise FileNotFoundError(f"{root}: no such folder or file to index")
    return roots


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
        # Before binding: a fallback to torch (runtime missing, export failed) is what the archive then records.
        serve(bundle, options.runtime, self.archive.runtime, settings.home, prepare=("video", "image"))
        self.archive.bind_model(bundle, options.factory)
        self.summary = IndexSummary(run_id=0, status="running")
        self.committer = Committer(self.archive, self.summary, bundle.config.vision.grid)
        self.batcher = Batcher(options.batch_size)
        self._feed: _Feed | None = None
        self._batches_since_save = 0

    def run(self, paths: list[str | Path]) -> IndexSummary:
        with self.archive.writing(), _StopFlag() as stop:
            return self._run(paths, stop)

    def _run(self, paths: list[str | Path], stop: _StopFlag) -> IndexSummary:
        from tqdm import tqdm

        roots = existing_roots(paths, self.archive)
        started = time.perf_counter()
        self._start_run(roots)
        todo = self._plan(roots)
        bar = tqdm(total=len(todo), unit="file", desc="indexing", disable=not self.options.progress)
        try:
            with DecodePool(
                self.options.workers,
                self.options.decode_timeout_s,
                self.options.decode_memory_mb,
                address_space_backstop=self.options.decoder != "torchcodec",  # it may open a CUDA context
            ) as pool:
                self._feed = _Feed(self._files(todo, stop))
                wait_started = time.perf_counter()
                for request, outcome in pool.imap(self._feed):
                    self.summary.timings["decode_wait"] += time.perf_counter() - wait_started
                    self._take(request, outcome)
                    self._report(bar, len(todo))
                    wait_started = time.perf_counter()
            for batch in self.batcher.drain():
                self._encode(batch)
            self._report(bar, len(todo))
        finally:
            bar.close()
            self._finish_run(stop, started)
        return self.summary

    # what local and Ray runs share: the run's record and its plan

    def _start_run(self, roots: list[Path]) -> None:
        config = self.bundle.config
        preprocessing = {
            "image_size": config.image_size,
            "num_frames": config.preprocess.num_frames,
            "segment": vars(self.options.segment),
            "feature_mode": self.archive.store.mode,
        }
        self.summary.run_id = self.archive.start_run(self.bundle.name, preprocessing, [str(r) for r in roots])

    def _plan(self, roots: list[Path]) -> list[Candidate]:
        """The files to index, in the order both kinds of run take them; the summary counts the rest."""
        read_started = time.perf_counter()
        planned = plan(self.archive, roots, self.options.retry_failed, self.options.prune_missing)
        self.summary.timings["read"] += time.perf_counter() - read_started
        self.summary.seen, self.summary.unchanged = planned.seen, planned.unchanged
        self.summary.removed, self.summary.offline = planned.removed, planned.offline
        self.summary.reused, self.summary.clips_reused = planned.reused, planned.clips_reused
        return planned.todo

    def _finish_run(self, stop: _StopFlag, started: float) -> None:
        self.summary.status = "interrupted" if stop.requested else "done"
        self.summary.timings["total"] = time.perf_counter() - started
        timings = {k: round(v, 3) for k, v in self.summary.timings.items()}
        self.archive.finish_run(self.summary.run_id, self.summary.status, self.summary.counts(), timings)
        if self.summary.status == "done":  # space of retired clips back, once enough of the store is theirs
            try:
                compacted = self.archive.compact(self.options.compact_above)
            except OSError as error:  # the run itself is done and kept: compacting can wait for room
                if not disk_full(error):
                    raise
                log.warning("no room to compact the feature store now (%s): run `mplug2-search compact` later", error)
                compacted = None
            self.summary.compacted_bytes = compacted.bytes_before - compacted.bytes_after if compacted else 0

    def _report(self, bar, total: int) -> None:
        done = self.summary.indexed + self.summary.failed
        bar.update(done - bar.n)  # a disabled bar counts nothing: progress is reported from `done`, not `bar.n`
        if self.on_progress is not None:
            self.on_progress({"done": done, "total": total, **self.summary.counts()})

    def _files(self, todo: list[Candidate], stop: _StopFlag) -> Iterator[Request]:
        """Each file's first requests, lazily: the pool pulls the next file only when a worker is free, so Ctrl-C
        stops feeding at once."""
        for candidate in todo:
            if stop.requested:
                return
            started = time.perf_counter()
            path, root = str(candidate.path), candidate.root
            try:
                info, stamp = self._read(candidate)
            except MediaError as error:
                self.committer.fail(path, root, candidate.stamp, error.code, str(error))
                continue
            except OSError as error:  # vanished or unreadable between the walk and now
                message = f"{path}: {error.strerror or error}"
                self.committer.fail(path, root, candidate.stamp, "unreadable", message)
                continue
            finally:
                self.summary.timings["probe"] += time.perf_counter() - started
            job = self.committer.begin(path, root, stamp, info)
            yield from first_requests(job, self.bundle.config, self.options)

    def _read(self, candidate: Candidate) -> tuple[MediaInfo, FileStamp]:
        """Probe and hash a file (here; the Ray driver has it done on the cluster, ahead of need)."""
        return read_file(candidate)

    def _take(self, request: Request, outcome: Outcome) -> None:
        """A request back from the pool: shots become clip requests; decoded clips are registered and batched."""
        job = self.committer.jobs[request.tag]  # type: ignore[index]
        job.requests_left -= 1
        if isinstance(outcome, MediaError):
            job.errors.append(outcome)
        elif isinstance(outcome, SegmentResult):
            self.summary.timings["segment"] += outcome.seconds
            assert self._feed is not None and isinstance(request, SegmentRequest)
            spans = outcome.spans
            self._feed.followups.extend(clip_requests(job, spans, self.bundle.config, self.options))
        else:
            assert isinstance(request, DecodeRequest) and isinstance(outcome, DecodeResult)
            self.summary.timings["decode"] += outcome.seconds
            self.summary.decoders[outcome.backend] += 1
            decoded = decoded_clips(job, request, outcome)
            self.summary.clips_failed += len(outcome.spans) - len(decoded)
            for clip in self.committer.add_clips(job, decoded):
                batch = self.batcher.add(clip)
                if batch is not None:
                    self._encode(batch)
        self.committer.finish_if_done(job)

    def _encode(self, batch: list[PendingClip]) -> None:
        started = time.perf_counter()
        itc, tokens = encode_batch(self.bundle, batch, keep_tokens=self.archive.store.mode != "none")
        self.summary.timings["encode"] += time.perf_counter() - started
        self._write(batch, itc, tokens)

    def _write(self, batch: list[PendingClip], itc: np.ndarray, tokens: list[np.ndarray] | None) -> None:
        """Store an encoded batch through the committer; save the index every `save_every_batches` batches."""
        started = time.perf_counter()
        self.committer.store(batch, itc, tokens)
        self._batches_since_save += 1
        if self._batches_since_save >= self.options.save_every_batches:
            self.archive.save_index()
            self._batches_since_save = 0
        self.summary.timings["write"] += time.perf_counter() - started


def index_paths(
    paths: list[str | Path],
    settings: Settings,
    bundle: ModelBundle,
    options: IndexOptions | None = None,
    on_progress: Callable[[dict], None] | None = None,
) -> IndexSummary:
    """Index (or update) the archive under `paths`; see the module docstring. A full disk stops the run with
    `DiskFullError` (one line: where, how much is free, what to do); what was committed stays."""
    with stops_when_full(settings):
        indexer = Indexer(settings, bundle, options or IndexOptions(), on_progress)
        try:
            return indexer.run(paths)
        finally:
            indexer.archive.close()
