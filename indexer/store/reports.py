"""What the archive reports: its contents (`ArchiveStats`), a sync of the vector index, a compaction, and whether
its three stores agree (`verify_archive`, read-only: it may run beside an index run or a compaction)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from indexer.store.db import Catalog
from indexer.store.db.records import CatalogStats, MediaRecord, RunRecord
from indexer.store.features import FeatureStore
from indexer.store.vectors import VectorIndex


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


@dataclass(frozen=True)
class FeatureStats:
    clips: int
    bytes: int
    mode: str
    by_form: dict[str, int]

    @property
    def bytes_per_clip(self) -> float:
        return self.bytes / max(self.clips, 1)


@dataclass(frozen=True)
class ArchiveStats:
    """What the archive holds, for `status` and the app's library page."""

    model: str | None
    roots: list[str]
    catalog: CatalogStats
    features: FeatureStats
    last_run: RunRecord | None
    failed: list[MediaRecord]
    offline: list[tuple[str, int]] = field(default_factory=list)  # (folder, files) of files whose folder is gone


@dataclass(frozen=True)
class CompactReport:
    clips_dropped: int
    bytes_before: int
    bytes_after: int
    clips_kept: int

    @property
    def bytes_per_clip(self) -> float:
        return self.bytes_after / max(self.clips_kept, 1)


def verify_archive(catalog: Catalog, store: FeatureStore, vectors_path: Path) -> VerifyReport:
    """Do the database, the feature store and the saved index agree? (The saved file, not a synced copy.) Clips of
    offline files keep their stored vectors but are not in the index."""
    problems: list[str] = []
    store.refresh()
    ready = catalog.ready_clip_ids()
    kept = catalog.kept_clip_ids()
    stored = store.ids()
    problems += [f"feature store: {p}" for p in store.verify()]
    without_vectors = np.setdiff1d(kept, stored)
    if len(without_vectors):
        problems.append(f"{len(without_vectors)} clips have no stored vectors, e.g. {without_vectors[:5].tolist()}")
    orphans = np.setdiff1d(stored, kept)
    if len(orphans):
        problems.append(
            f"{len(orphans)} stored vectors belong to no searchable clip (orphans), e.g. {orphans[:5].tolist()}"
        )
    indexed = np.zeros(0, np.int64)
    if VectorIndex.exists(vectors_path):
        try:
            indexed = VectorIndex.load(vectors_path).ids()
        except (ValueError, OSError, RuntimeError) as error:
            problems.append(f"vector index unreadable: {error}")
    elif len(ready):
        problems.append("no saved vector index although clips are searchable")
    if len(np.setdiff1d(indexed, ready)) or len(np.setdiff1d(ready, indexed)):
        problems.append(
            f"the saved vector index holds {len(indexed)} clips, {len(np.setdiff1d(indexed, ready))} "
            f"of them not searchable, and misses {len(np.setdiff1d(ready, indexed))} searchable ones"
        )
    pending = catalog.stats().clips_pending
    if pending:
        problems.append(f"{pending} clips are pending (an index run was interrupted): run `mplug2-search index` again")
    return VerifyReport(len(ready), len(stored), len(indexed), problems)
