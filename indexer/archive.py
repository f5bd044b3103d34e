"""An indexed archive: the catalog (the truth), the feature store and the FAISS index, opened together.

The database says which clips are searchable (`ready`). The feature store holds their vectors; the FAISS file is a
cache of those vectors that may lag behind (it is saved every so often, not after every file) or run ahead (a
crash between writing vectors and committing them). `sync_index` brings a loaded index to exactly the ready clips,
from the store, so a search never sees a half-indexed file and a crash never leaves an orphan vector in use.
`archive.json` pins the model that made the vectors: searching them with another model's queries is refused.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from indexer.db import Catalog
from indexer.features import FeatureStore
from indexer.settings import Settings
from indexer.vectors import VectorIndex

log = logging.getLogger(__name__)


class ArchiveError(RuntimeError):
    """The archive cannot be used as asked; the message says what to do."""


@dataclass
class SyncReport:
    added: int = 0
    removed: int = 0
    missing_vectors: list[int] = field(default_factory=list)  # ready in the DB, absent from the store


@dataclass
class VerifyReport:
    ready_clips: int
    stored_clips: int
    indexed_clips: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


class Archive:
    def __init__(self, settings: Settings, feature_mode: str | None = None, budget_bytes: int | None = None) -> None:
        self.settings = settings
        self.index_dir = settings.index_dir
        self.index_dir.mkdir(parents=True, exist_ok=True)
        self.catalog = Catalog(settings.db_url)
        self.meta_path = self.index_dir / "archive.json"
        self.meta: dict = json.loads(self.meta_path.read_text()) if self.meta_path.exists() else {}
        mode = feature_mode or self.meta.get("feature_mode", "full")
        self.store = FeatureStore(settings.features_dir, mode=mode, budget_bytes=budget_bytes)

    @property
    def vectors_path(self) -> Path:
        return self.index_dir / "vectors.faiss"

    def bind_model(self, name: str, fingerprint: str, dim: int, factory: str | None = None) -> None:
        """Record (first run) or check (later runs) which model the archive's vectors come from."""
        recorded = self.meta.get("model_fingerprint")
        if recorded is not None and recorded != fingerprint:
            raise ArchiveError(
                f"this archive was indexed with model {self.meta.get('model')} ({recorded}); {name} ({fingerprint}) "
                f"makes different vectors. Use --model {self.meta.get('model')}, or index into a new --index-dir "
                "(or delete this one) to re-embed everything with the new model."
            )
        if recorded is None:
            self.meta.update(
                model=name,
                model_fingerprint=fingerprint,
                dim=dim,
                feature_mode=self.store.mode,
                factory=factory or "Flat",
            )
            self._save_meta()
        elif factory is not None and factory != self.meta.get("factory"):
            self.meta["factory"] = factory
            self._save_meta()

    def _save_meta(self) -> None:
        temporary = self.meta_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.meta, indent=1))
        os.replace(temporary, self.meta_path)

    def load_index(self, sync: bool = True) -> VectorIndex:
        """The saved index (or an empty one), synced to the database's ready clips."""
        if "dim" not in self.meta:
            raise ArchiveError(f"nothing has been indexed into {self.index_dir} yet: run `mplug2-search index PATH`")
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

    def save_index(self, index: VectorIndex) -> None:
        index.save(self.vectors_path)

    def rebuild_index(self, factory: str | None = None) -> VectorIndex:
        """A new index from the feature store's vectors of the ready clips, saved in place of the old one."""
        if "dim" not in self.meta:
            raise ArchiveError(f"nothing has been indexed into {self.index_dir} yet: run `mplug2-search index PATH`")
        factory = factory or self.meta.get("factory", "Flat")
        index = VectorIndex(self.meta["dim"], factory, model=self.meta["model_fingerprint"])
        report = self.sync_index(index)
        self.save_index(index)
        if factory != self.meta.get("factory"):
            self.meta["factory"] = factory
            self._save_meta()
        if report.missing_vectors:
            log.warning("%d ready clips have no stored vectors: re-index their files", len(report.missing_vectors))
        return index

    def verify(self) -> VerifyReport:
        """Do the database, the feature store and the saved index agree? (The saved file, not a synced copy.)"""
        problems: list[str] = []
        self.store.refresh()
        ready = self.catalog.ready_clip_ids()
        stored = self.store.ids()
        problems += [f"feature store: {p}" for p in self.store.verify()]
        without_vectors = np.setdiff1d(ready, stored)
        if len(without_vectors):
            problems.append(
                f"{len(without_vectors)} searchable clips have no stored vectors, e.g. {without_vectors[:5].tolist()}"
            )
        orphans = np.setdiff1d(stored, ready)
        if len(orphans):
            problems.append(
                f"{len(orphans)} stored vectors belong to no searchable clip (orphans), e.g. {orphans[:5].tolist()}"
            )
        indexed = np.zeros(0, np.int64)
        if VectorIndex.exists(self.vectors_path):
            try:
                indexed = VectorIndex.load(self.vectors_path).ids()
            except (ValueError, OSError, RuntimeError) as error:
                problems.append(f"vector index unreadable: {error}")
        elif len(ready):
            problems.append("no saved vector index although clips are searchable")
        if len(np.setdiff1d(indexed, ready)) or len(np.setdiff1d(ready, indexed)):
            problems.append(
                f"the saved vector index holds {len(indexed)} clips, {len(np.setdiff1d(indexed, ready))} "
                f"of them not searchable, and misses {len(np.setdiff1d(ready, indexed))} searchable ones"
            )
        pending = self.catalog.stats()["clips_pending"]
        if pending:
            problems.append(
                f"{pending} clips are pending (an index run was interrupted): run `mplug2-search index` again"
            )
        return VerifyReport(len(ready), len(stored), len(indexed), problems)

    def close(self) -> None:
        self.catalog.close()


class IndexLock:
    """One index run per archive at a time (a second one would fight over the feature store and the index)."""

    def __init__(self, index_dir: Path) -> None:
        self.path = index_dir / "index.lock"
        self._handle = None

    def __enter__(self) -> IndexLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "a+")
        try:
            fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._handle.seek(0)
            holder = self._handle.read().strip() or "another process"
            self._handle.close()
            raise ArchiveError(
                f"an index run is already in progress on {self.path.parent} (pid {holder}); wait for "
                "it or stop it first"
            ) from None
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.write(str(os.getpid()))
        self._handle.flush()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
