"""An indexed archive: the catalog (the truth), the feature store and the FAISS index, opened together.

`Archive` is the only writer of the three stores. An index run (the local pipeline or the Ray committer) drives a
file through them with these calls, in this order, and nothing else:

    archive.start_run(model, preprocessing, roots)   # sweep a crashed run's leftovers, load the index
    archive.begin_file(path, root, stamp, facts)     # -> media id; the file is `indexing`, its old clips forgotten
    archive.add_clips(media_id, rows)                # -> clip ids, `pending` (not searchable)
    archive.store_vectors(clip_ids, itc, tokens)     # a durable feature-store shard, then the in-memory index
    archive.commit_file(media_id, ready_clip_ids)    # one transaction: the clips `ready`, the file `indexed`
    archive.fail_file(path, root, stamp, code, msg)  # instead of commit: `failed` with its reason, clips forgotten
    archive.retire_files(media_ids)                  # files gone from disk: `missing`, clips forgotten
    archive.set_offline(media_ids)                   # files whose folder is gone: clips kept, not searchable
    archive.reuse_file(source, path, root, stamp, move)  # a moved/copied/returned file: its clips, 0 encodes
    archive.finish_run(run_id, status, counts, timings)  # saves the index

Crash safety follows from that order: vectors are durable before their clips are `ready`, and a file is
`indexing` from its first write to its commit. `start_run` (through `recover`) redoes what a kill left behind:
pending clips of `indexing` files are dropped, and so is any stored vector of a clip that is not ready.

The database says which clips are searchable (`ready`). The FAISS file is a cache of the stored vectors that may lag
behind (it is saved every so often, not after every file) or run ahead (a crash between storing vectors and
committing them); `sync_index` brings the loaded index to exactly the ready clips, so a search never sees a
half-indexed file. Readers (the search engine) use `search`, `clips`, `thumbnail`, `stats` and `refresh`.
`compact` (under the writer lock, `writing`) gives back the space of retired clips.
`archive.json` pins the model that made the vectors (and the feature mode and index type chosen at the first run).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from indexer.atomic import atomic_write_json
from indexer.settings import Settings
from indexer.store.binding import (
    catalog_without_its_index,
    nothing_indexed,
    other_model,
    other_runtime,
    searched_with_other_model,
)
from indexer.store.db import Catalog
from indexer.store.db.records import (
    ClipRecord,
    FileStamp,
    MediaRecord,
    ProbeFacts,
    SearchFilters,
)
from indexer.store.errors import ArchiveError  # noqa: F401 (callers import it from here)
from indexer.store.features import FeatureStore
from indexer.store.lock import IndexLock
from indexer.store.reports import ArchiveStats, CompactReport, FeatureStats, SyncReport, VerifyReport, verify_archive
from indexer.store.vectors import SearchHits, VectorIndex

if TYPE_CHECKING:
    from mplug2.bundle import ModelBundle

log = logging.getLogger(__name__)

DEFAULT_FEATURE_MODE = "full"


class Archive:
    """The three stores of one archive. `feature_mode` None keeps the mode the archive recorded (full if new)."""

    def __init__(self, settings: Settings, feature_mode: str | None = None, budget_bytes: int | None = None) -> None:
        self.settings = settings
        self.index_dir = settings.index_dir
        self.index_dir.mkdir(parents=True, exist_ok=True)
        self.catalog = Catalog(settings.db_url, settings.db_retry_s)
        self.meta_path = self.index_dir / "archive.json"
        self.meta: dict = json.loads(self.meta_path.read_text()) if self.meta_path.exists() else {}
        mode = feature_mode or self.meta.get("feature_mode", DEFAULT_FEATURE_MODE)
        self.store = FeatureStore(settings.features_dir, mode=mode, budget_bytes=budget_bytes)
        self._index: VectorIndex | None = None
        self._generation: int | None = None
        self._locked = False  # whether this archive holds the writer lock (`writing`)

    @classmethod
    def open_indexed(cls, settings: Settings) -> Archive:
        """An archive that an index run has written, for searching. Checked before anything is opened: a search
        pointed at the wrong folder or database says so and leaves no empty archive behind."""
        meta_path = settings.index_dir / "archive.json"
        if not meta_path.is_file() or "model_fingerprint" not in json.loads(meta_path.read_text()):
            raise nothing_indexed(settings.index_dir)
        return cls(settings)

    @property
    def vectors_path(self) -> Path:
        return self.index_dir / "vectors.faiss"

    @property
    def model(self) -> str | None:
        """The model the archive was indexed with (None before the first run)."""
        return self.meta.get("model")

    @property
    def runtime(self) -> tuple[str, str] | None:
        """(runtime, precision) the archive's vectors were encoded with; torch fp32 for an archive from before they
        were recorded; None before the first run."""
        if "model_fingerprint" not in self.meta:
            return None
        return self.meta.get("runtime", "torch"), self.meta.get("precision", "fp32")

    def bind_model(self, bundle: ModelBundle, factory: str | None = None) -> None:
        """Record (first run) or check (later runs) which model the archive's vectors come from, and record the
        feature mode and index type asked for (so the next run, asking nothing, keeps them)."""
        recorded = self.meta.get("model_fingerprint")
        if refusal := other_model(self.meta, bundle):
            raise refusal
        if not self.meta_path.exists() and len(self.catalog.kept_clip_ids()):
            raise catalog_without_its_index(self.settings)
        if refusal := other_runtime(self.runtime, bundle):
            raise refusal
        wanted = {"feature_mode": self.store.mode, "model_weights": bundle.weights_stamp}
        if recorded is None:
            wanted.update(model=bundle.name, model_fingerprint=bundle.fingerprint, dim=bundle.config.embed_dim)
            wanted.update(runtime=bundle.runtime, precision=bundle.precision)
            wanted["factory"] = factory or "Flat"
        elif factory is not None:
            wanted["factory"] = factory
        if any(self.meta.get(key) != value for key, value in wanted.items()):
            self.meta.update(wanted)
            self._save_meta()

    def _save_meta(self) -> None:
        atomic_write_json(self.meta_path, self.meta, indent=1)

    def check_model(self, bundle: ModelBundle) -> None:
        """Refuse to search this archive's vectors with another model's queries. The weights file the last index
        run recorded, unchanged (same path, size and time), needs no fingerprint: that pass over every weight costs
        a search from the shell a tenth of a second with the bundled model, seconds with a large one."""
        if "model_fingerprint" not in self.meta:
            raise nothing_indexed(self.index_dir)
        if bundle.weights_stamp is not None and bundle.weights_stamp == self.meta.get("model_weights"):
            return
        if self.meta["model_fingerprint"] != bundle.fingerprint:
            raise searched_with_other_model(self.meta, bundle)

    # the vector index (a cache of the stored vectors of the ready clips)

    @property
    def index(self) -> VectorIndex:
        """The loaded index, synced to the ready clips (loaded on first use)."""
        if self._index is None:
            self._open_index()
        assert self._index is not None
        return self._index

    def _open_index(self) -> None:
        self._generation = self.catalog.generation()  # before the sync: a commit in between is seen next time
        self._index = self.load_index()

    def load_index(self, sync: bool = True) -> VectorIndex:
        """The saved index (or an empty one), synced to the database's ready clips."""
        if "dim" not in self.meta:
            raise nothing_indexed(self.index_dir)
        index = None
        if VectorIndex.exists(self.vectors_path):
            try:
                index = VectorIndex.load(self.vectors_path)
            except (ValueError, OSError, RuntimeError) as error:
                log.warning("the saved vector index is unusable (%s); rebuilding it from the feature store", error)
        if index is None or index.dim != self.meta["dim"]:
            index = VectorIndex(
                self.meta["dim"], self.meta.get("factory", "Flat"), model=self.meta["model_fingerprint"]
            )
        if sync:
            self.sync_index(index)
        return index

    def sync_index(self, index: VectorIndex, ready: np.ndarray | None = None) -> SyncReport:
        report = SyncReport()
        self.store.refresh()
        ready = self.catalog.ready_clip_ids() if ready is None else ready
        have = index.ids()
        extra = np.setdiff1d(have, ready)
        if len(extra):
            report.removed = index.remove(extra)
        missing = np.setdiff1d(ready, have)
        if len(missing):
            stored, vectors = self.store.itc(missing)
            index.add(stored, vectors)
            report.added = len(stored)
            report.missing_vectors = np.setdiff1d(missing, stored).tolist()
        if report.added or report.removed:
            log.info("vector index synced: %d added, %d removed", report.added, report.removed)
        if index.needs_rebuild:
            index.compact()
        return report

    def save_index(self) -> None:
        if self._index is not None:
            self._index.save(self.vectors_path)

    def rebuild_index(self, factory: str | None = None) -> VectorIndex:
        """A new index from the feature store's vectors of the ready clips, saved in place of the old one."""
        if "dim" not in self.meta:
            raise nothing_indexed(self.index_dir)
        factory = factory or self.meta.get("factory", "Flat")
        index = VectorIndex(self.meta["dim"], factory, model=self.meta["model_fingerprint"])
        report = self.sync_index(index)
        index.save(self.vectors_path)
        self._index = index
        if factory != self.meta.get("factory"):
            self.meta["factory"] = factory
            self._save_meta()
        if report.missing_vectors:
            log.warning("%d ready clips have no stored vectors: re-index their files", len(report.missing_vectors))
        return index

    # writing: one index run at a time (under `indexer.store.lock.IndexLock`), in the order the module docstring gives

    def start_run(self, model: str, preprocessing: dict, roots: list[str]) -> int:
        """Open a run: record it, redo what a killed run left half-done, and load the index. Returns the run id."""
        run_id = self.catalog.start_run(model, preprocessing, roots)
        self.store.cleanup_temporary()
        self.store.finish_compaction()
        self.recover()
        self._open_index()
        return run_id

    def recover(self) -> int:
        """Files an earlier run left `indexing`: drop their pending clips and any vectors stored for them. Indexed
        files whose stored vectors are gone (a feature shard deleted or lost with a disk) are encoded again: put back
        as `indexing`, they take the same road. Returns how many orphan vectors were dropped."""
        self.store.refresh()
        lost = self.catalog.requeue_media_of(np.setdiff1d(self.catalog.ready_clip_ids(), self.store.ids()))
        if lost:
            log.warning(
                "%d indexed files have lost their stored vectors (feature-store shards deleted or lost), "
                "e.g. %s: encoding them again",
                len(lost),
                lost[0].path,
            )
        for record in self.catalog.media_by_status("indexing"):
            self.catalog.discard_pending(record.id)
            log.info("redoing %s (an earlier run was interrupted while indexing it)", record.path)
        # With no pending clip left, every stored vector must belong to a kept clip (ready, or of an offline file).
        # Others are orphans of a kill: vectors written before their file committed, or old vectors of a changed
        # file whose rows were replaced.
        orphans = np.setdiff1d(self.store.ids(), self.catalog.kept_clip_ids())
        if len(orphans):
            self.store.remove(orphans)
            log.info("dropped %d orphan vectors left by an interrupted run", len(orphans))
        return len(orphans)

    def add_root(self, root: str | Path) -> str:
        return self.catalog.add_root(root)

    def files_inside(self, folder: str) -> list[MediaRecord]:
        """What the catalog knows of the files inside a folder, under whichever root."""
        return self.catalog.media_inside(folder)

    def stored_sizes(self) -> set[int]:
        """Sizes of the files whose clips are kept (a file of another size cannot be a copy of one)."""
        return self.catalog.stored_sizes()

    def files_with_hash(self, content_hash: str | None) -> list[MediaRecord]:
        """Files with kept clips and this content: the sources a moved or copied file can reuse."""
        return self.catalog.media_with_hash(content_hash) if content_hash else []

    def files_under(self, root: str) -> dict[str, MediaRecord]:
        """What the catalog knows of the files under an indexed root, by path."""
        return {record.path: record for record in self.catalog.media_under(root)}

    def touch_file(self, media_id: int, mtime: float) -> None:
        """A file whose mtime changed but whose content did not: remember the new mtime, keep everything else."""
        self.catalog.touch_media(media_id, mtime)

    def begin_file(self, path: str, root: str, stamp: FileStamp, facts: ProbeFacts) -> int:
        """Start (re)indexing a file: it becomes `indexing` with its probe facts; its old clips are forgotten."""
        media_id, old_clips = self.catalog.begin_media(path, root, stamp, facts)
        self._forget(old_clips)
        return media_id

    def add_clips(self, media_id: int, rows: Sequence[tuple[float, float, bytes | None]]) -> list[int]:
        """Pending clips (start, end, thumbnail JPEG) of a file being indexed; returns their ids, in order."""
        return self.catalog.add_clips(media_id, rows)

    def store_vectors(self, clip_ids: np.ndarray, itc: np.ndarray, tokens: list[np.ndarray] | None, grid: int) -> None:
        """Clips' ITC vectors and visual tokens: one durable feature-store shard, then the in-memory index."""
        self.store.write(clip_ids, itc, tokens, grid)
        self.index.add(clip_ids, itc)

    def commit_file(self, media_id: int, ready_clip_ids: Sequence[int]) -> None:
        """The file's vectors are durable: its clips become searchable and the file `indexed`, in one step."""
        self.catalog.commit_media(media_id, ready_clip_ids)

    def fail_file(self, path: str, root: str, stamp: FileStamp, code: str, message: str) -> None:
        """Record why a file could not be indexed; whatever clips it had are forgotten."""
        self._forget(self.catalog.fail_media(path, root, stamp, code, message))

    def retire_files(self, media_ids: Sequence[int]) -> int:
        """Files gone from disk: `missing`, their clips forgotten. Returns how many clips went."""
        clip_ids = self.catalog.mark_missing(media_ids)
        self._forget(clip_ids)
        return len(clip_ids)

    def set_offline(self, media_ids: Sequence[int]) -> int:
        """Files whose folder is gone (an unmounted disk): kept with their vectors, left out of search until the
        folder is back. Returns how many clips went offline."""
        return self.catalog.set_offline(media_ids)

    def reuse_file(self, source: MediaRecord, path: str, root: str, stamp: FileStamp, move: bool) -> int:
        """A stored file found at `path` (same content hash; same model, as the archive holds one): its clips are
        reused, never decoded or encoded again. `move` (its old path is gone, or it is offline): the file's row
        follows it. Else (a copy): new clips with the source's vectors, tokens and thumbnails, committed in the
        archive's order (rows pending, vectors durable, then ready). Returns how many clips were reused."""
        if move or source.path == path:
            self._forget(self.catalog.set_online(source.id, path, root, stamp))
            if self._index is not None:
                self.sync_index(self._index)
            return len(self.catalog.kept_clip_ids_of(source.id))
        media_id, old_ids, new_ids, dropped = self.catalog.copy_media(source.id, path, root, stamp)
        self._forget(dropped)
        if new_ids:
            self.store.copy(np.array(old_ids, np.int64), np.array(new_ids, np.int64))
            _, vectors = self.store.itc(np.array(new_ids, np.int64))
            self.index.add(np.array(new_ids, np.int64), vectors)
        self.catalog.commit_media(media_id, new_ids)
        return len(new_ids)

    @contextlib.contextmanager
    def writing(self) -> Iterator[Archive]:
        """Hold the archive's writer lock (`IndexLock`): one index run or compaction at a time."""
        with IndexLock(self.index_dir):
            self._locked = True
            try:
                yield self
            finally:
                self._locked = False

    def compact(self, min_dead_share: float = 0.0) -> CompactReport | None:
        """Give back the space of retired clips: feature-store shards rewritten without them (journaled, so a kill
        at any moment leaves a consistent archive) and the vector index rebuilt without its tombstones. Runs when
        the dead share of the store's bytes is above `min_dead_share` (None returned otherwise). Takes the writer
        lock unless the caller (an index run) holds it."""
        if not self._locked:
            with self.writing():
                return self.compact(min_dead_share)
        self.store.cleanup_temporary()
        self.store.finish_compaction()
        self.recover()
        self.store.refresh()
        kept = self.catalog.kept_clip_ids()
        share = self.store.dead_share(kept)
        if share <= min_dead_share or share == 0:
            return None
        before = self.store.size_bytes()
        log.info("compacting the feature store: %.0f%% of %d bytes belong to retired clips", 100 * share, before)
        dropped = self.store.compact(kept)
        index = self.index
        if index.tombstones:
            index.compact()
        self.save_index()
        return CompactReport(dropped, before, self.store.size_bytes(), len(self.store.ids()))

    def _forget(self, clip_ids: list[int]) -> None:
        if clip_ids:
            self.store.remove(clip_ids)
            if self._index is not None:
                self._index.remove(np.array(clip_ids))

    def finish_run(self, run_id: int, status: str, counts: dict, timings: dict) -> None:
        self.save_index()
        self.catalog.finish_run(run_id, status, counts, timings)

    # reading: what the search engine and the app ask

    def refresh(self) -> bool:
        """Follow the database while an index run commits files: pick up new clips, drop retired ones. Cheap when
        nothing changed (one primary-key lookup of the catalog's generation). Returns True if the index changed."""
        if self._index is None:
            self._open_index()
            return True
        generation = self.catalog.generation()
        if generation == self._generation:
            return False
        self.sync_index(self._index)
        self._generation = generation
        return True

    def search(self, vector: np.ndarray, k: int, allowed: np.ndarray | None = None) -> SearchHits:
        return self.index.search(vector, k, allowed)

    def clips(self, ids: Sequence[int] | np.ndarray) -> list[ClipRecord]:
        """Ready clips by id, in the order asked; unknown or not-ready ids are left out."""
        return self.catalog.clips(ids)

    def clip_ids_matching(self, filters: SearchFilters) -> np.ndarray:
        return self.catalog.clip_ids_matching(filters)

    def tokens(self, clip_ids: Sequence[int]) -> list[np.ndarray | None]:
        return self.store.tokens(clip_ids)

    def thumbnail(self, clip_id: int) -> bytes | None:
        return self.catalog.thumbnail(clip_id)

    def media(self, path: str) -> MediaRecord | None:
        return self.catalog.media_by_path(path)

    def roots(self) -> list[str]:
        return self.catalog.roots()

    def is_under_root(self, path: str | Path) -> bool:
        return self.catalog.is_under_root(path)

    def stats(self) -> ArchiveStats:
        self.store.refresh()
        features = self.store.stats()
        return ArchiveStats(
            model=self.model,
            roots=self.catalog.roots(),
            catalog=self.catalog.stats(),
            features=FeatureStats(features["clips"], features["bytes"], features["mode"], features["by_form"]),
            last_run=self.catalog.last_run(),
            failed=self.catalog.failed_media(),
            offline=self.catalog.offline_folders(),
        )

    def verify(self) -> VerifyReport:
        return verify_archive(self.catalog, self.store, self.vectors_path)

    def close(self) -> None:
        self.catalog.close()
