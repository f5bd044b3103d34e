"""The vector index: FAISS `IndexIDMap2` over ITC vectors, keyed by clip id, inner product on unit vectors.

- Exact (`Flat`) by default; any `index_factory` string (`HNSW32`, `IVF1024,PQ32`, ...) on request, or `auto`
  (Flat below `AUTO_HNSW_ABOVE` vectors, HNSW32 above). An index that needs training stays exact until it holds
  enough vectors to train on (`training_threshold`), then is trained on all of them and takes over.
- Filters act inside the search: an allow-list becomes an `IDSelectorBatch` in the search parameters. Where an
  index cannot take a selector (GPU indexes), the search over-fetches (k, 2k, 4k, ...) until k allowed results
  survive or the index is exhausted.
- Removal: `remove_ids` for the flat index; tombstones (excluded at search time) for the others (HNSW cannot
  remove; IVF under an id map would mislabel vectors), with `needs_rebuild` once they pass a fifth of the index.
- On GPU (all GPUs) when faiss-gpu sees one and the index type runs there; the CPU index stays the saved truth.
- Saved atomically: a new data file per save, and a JSON sidecar (current file, factory, dim, count, tombstones,
  model) switched by one rename. The index is a cache: it can always be rebuilt from the feature store.
"""

from __future__ import annotations

import errno
import json
import logging
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from indexer.atomic import atomic_write, atomic_write_json

log = logging.getLogger(__name__)

AUTO_HNSW_ABOVE = 200_000
HNSW_EF_SEARCH = 128
IVF_NPROBE = 32
# Batches of queries go through BLAS above this count (much faster for batched evaluation-style searches).
faiss.cvar.distance_compute_blas_threshold = 20


def training_threshold(factory: str) -> int:
    """Vectors needed before an index of this kind can be trained (0 if it needs no training): FAISS wants about
    39 points per k-means centroid, for each IVF list and for PQ's 256 codes per sub-quantizer."""
    needed = 0
    if match := re.search(r"IVF(\d+)", factory):
        needed = max(needed, 39 * int(match.group(1)))
    if "PQ" in factory or "SQ" in factory:
        needed = max(needed, 39 * 256)
    return needed


def supports_removal(factory: str) -> bool:
    """Only a flat index removes in place under IndexIDMap2: HNSW cannot remove at all, and IVF keeps its internal
    ids while the id map compacts, which would mislabel every later vector."""
    return factory == "Flat"


@dataclass
class SearchHits:
    scores: np.ndarray  # [Q, k] float32, descending; -inf where fewer than k results exist
    ids: np.ndarray  # [Q, k] int64; -1 where fewer than k results exist


class VectorIndex:
    def __init__(self, dim: int, factory: str = "Flat", use_gpu: bool | str = "auto", model: str = "") -> None:
        self.dim = dim
        self.factory = factory
        self.model = model
        self.use_gpu = use_gpu
        self.tombstones: set[int] = set()
        self._index = self._new_index(factory if training_threshold(factory) == 0 else "Flat")
        self._trained_factory = factory if training_threshold(factory) == 0 else "Flat"
        self._gpu_index = None

    # construction

    def _new_index(self, factory: str) -> faiss.IndexIDMap2:
        if factory == "auto":
            factory = "Flat"
        inner = faiss.index_factory(self.dim, factory, faiss.METRIC_INNER_PRODUCT)
        if "IVF" in factory:
            faiss.extract_index_ivf(inner).make_direct_map()  # so vectors can be read back for rebuilds
        return faiss.IndexIDMap2(inner)

    @property
    def effective_factory(self) -> str:
        """The structure actually serving searches (Flat while a trainable index waits for data)."""
        return self._trained_factory

    @property
    def ntotal(self) -> int:
        return self._index.ntotal - len(self.tombstones)

    def ids(self) -> np.ndarray:
        stored = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        if self.tombstones:
            stored = stored[~np.isin(stored, np.fromiter(self.tombstones, np.int64))]
        return np.sort(stored)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if len(ids) == 0:  # (an empty store answers with vectors of width 0)
            return
        if vectors.shape != (len(ids), self.dim):
            raise ValueError(f"vectors of shape {vectors.shape} for {len(ids)} ids of dim {self.dim}")
        revived = self.tombstones.intersection(ids.tolist())
        if revived:  # a clip back from offline: its vector never changed (ids are never reused), so unhide it
            self.tombstones -= revived
            fresh = ~np.isin(ids, np.fromiter(revived, np.int64))
            ids, vectors = ids[fresh], vectors[fresh]
        if len(ids):
            self._index.add_with_ids(vectors, ids)
        self._gpu_index = None
        self._maybe_train()

    def _maybe_train(self) -> None:
        wanted = self.factory if self.factory != "auto" else ("HNSW32" if self.ntotal > AUTO_HNSW_ABOVE else "Flat")
        if wanted == self._trained_factory:
            return
        needed = training_threshold(wanted)
        if self.ntotal < max(needed, 1):
            return
        ids = self.ids()
        vectors = self._index.reconstruct_batch(ids)
        log.info("switching the vector index to %s (%d vectors)", wanted, len(ids))
        index = self._new_index(wanted)
        if needed:
            index.train(vectors)
        index.add_with_ids(vectors, ids)
        self._index, self._trained_factory, self.tombstones = index, wanted, set()

    def remove(self, ids: np.ndarray) -> int:
        """Drop these ids; returns how many were present."""
        ids = np.unique(np.asarray(ids, dtype=np.int64))
        present = ids[np.isin(ids, self.ids())]
        if len(present) == 0:
            return 0
        if supports_removal(self._trained_factory):
            self._index.remove_ids(faiss.IDSelectorBatch(present))
        else:
            self.tombstones.update(present.tolist())
        self._gpu_index = None
        return len(present)

    @property
    def needs_rebuild(self) -> bool:
        return len(self.tombstones) > 0.2 * max(self._index.ntotal, 1)

    def compact(self) -> None:
        """Rebuild in place with only the live vectors (tombstones dropped for good)."""
        ids = self.ids()
        vectors = self._index.reconstruct_batch(ids) if len(ids) else np.zeros((0, self.dim), np.float32)
        self._index = self._new_index("Flat")
        self._trained_factory, self.tombstones, self._gpu_index = "Flat", set(), None
        if len(ids):
            self.add(ids, vectors)

    # search

    def _search_params(self, selector: faiss.IDSelector | None) -> faiss.SearchParameters:
        if "HNSW" in self._trained_factory:
            params = faiss.SearchParametersHNSW(efSearch=HNSW_EF_SEARCH)
        elif "IVF" in self._trained_factory:
            params = faiss.SearchParametersIVF(nprobe=IVF_NPROBE)
        else:
            params = faiss.SearchParameters()
        if selector is not None:
            params.sel = selector
        return params

    def _gpu(self) -> faiss.Index | None:
        wanted = self.use_gpu is True or (self.use_gpu == "auto" and faiss.get_num_gpus() > 0)
        if not wanted or "HNSW" in self._trained_factory or not hasattr(faiss, "index_cpu_to_all_gpus"):
            return None
        if self._gpu_index is None:
            self._gpu_index = faiss.index_cpu_to_all_gpus(self._index)
        return self._gpu_index

    def search(self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None) -> SearchHits:
        """Top-k by inner product; with `allowed_ids`, only among those ids (the filter acts inside the search)."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        empty = SearchHits(np.full((len(queries), k), -np.inf, np.float32), np.full((len(queries), k), -1, np.int64))
        if k <= 0 or self.ntotal == 0:
            return empty
        allowed = None if allowed_ids is None else np.unique(np.asarray(allowed_ids, dtype=np.int64))
        if allowed is not None and self.tombstones:
            allowed = allowed[~np.isin(allowed, np.fromiter(self.tombstones, np.int64))]
        if allowed is not None and len(allowed) == 0:
            return empty
        gpu = self._gpu()
        if gpu is not None:
            return self._overfetch(gpu, queries, k, allowed)
        selector = None
        if allowed is not None:
            selector = faiss.IDSelectorBatch(allowed)
        elif self.tombstones:
            selector = faiss.IDSelectorNot(faiss.IDSelectorBatch(np.fromiter(self.tombstones, np.int64)))
        scores, ids = self._index.search(queries, k, params=self._search_params(selector))
        return _finish(scores, ids)

    def _overfetch(self, index: faiss.Index, queries: np.ndarray, k: int, allowed: np.ndarray | None) -> SearchHits:
        """For indexes that take no selector: fetch more until k allowed hits survive in every row."""
        keep = None if allowed is None else set(allowed.tolist())
        drop = self.tombstones
        fetch = k
        while True:
            fetch = min(fetch, index.ntotal)
            scores, ids = index.search(queries, fetch)
            valid = ids >= 0
            if keep is not None:
                valid &= np.isin(ids, list(keep))
            if drop:
                valid &= ~np.isin(ids, list(drop))
            if valid.sum(axis=1).min() >= k or fetch >= index.ntotal:
                break
            fetch *= 2
        out = SearchHits(np.full((len(queries), k), -np.inf, np.float32), np.full((len(queries), k), -1, np.int64))
        for row in range(len(queries)):
            chosen = np.flatnonzero(valid[row])[:k]
            out.scores[row, : len(chosen)] = scores[row, chosen]
            out.ids[row, : len(chosen)] = ids[row, chosen]
        return out

    # persistence

    def save(self, path: str | Path) -> None:
        """Save atomically. The index goes to a new file named by generation; then one rename of the sidecar
        `<path>.json`, which names the current file, switches versions. A kill at any moment leaves the previous
        version whole and current."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        needed = self._index.ntotal * (self.dim * 4 + 16) + (1 << 16)  # vectors, ids, headers (flat; others less)
        if shutil.disk_usage(path.parent).free < needed:  # FAISS would half-write the file and print to stderr
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        generation = uuid.uuid4().hex[:12]
        data_file = path.with_name(f"{path.stem}-{generation}{path.suffix}")
        atomic_write(data_file, lambda temporary: faiss.write_index(self._index, str(temporary)))
        sidecar = {
            "file": data_file.name,
            "factory": self.factory,
            "trained_factory": self._trained_factory,
            "dim": self.dim,
            "count": self.ntotal,
            "stored": self._index.ntotal,
            "model": self.model,
            "tombstones": sorted(self.tombstones),
        }
        atomic_write_json(_sidecar(path), sidecar)
        for old in path.parent.glob(f"{path.stem}-*{path.suffix}"):
            if old.name != data_file.name:
                old.unlink(missing_ok=True)

    @staticmethod
    def exists(path: str | Path) -> bool:
        return _sidecar(Path(path)).exists()

    @classmethod
    def load(cls, path: str | Path, use_gpu: bool | str = "auto") -> VectorIndex:
        path = Path(path)
        sidecar = json.loads(_sidecar(path).read_text())
        index = faiss.read_index(str(path.with_name(sidecar["file"])))
        if index.ntotal != sidecar["stored"]:
            raise ValueError(f"{path} holds {index.ntotal} vectors but its sidecar says {sidecar['stored']}: rebuild")
        loaded = cls(sidecar["dim"], sidecar["factory"], use_gpu, sidecar.get("model", ""))
        loaded._index = index if isinstance(index, faiss.IndexIDMap2) else faiss.downcast_index(index)
        loaded._trained_factory = sidecar["trained_factory"]
        loaded.tombstones = set(sidecar["tombstones"])
        return loaded


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _finish(scores: np.ndarray, ids: np.ndarray) -> SearchHits:
    scores = scores.astype(np.float32)
    scores[ids < 0] = -np.inf
    return SearchHits(scores, ids.astype(np.int64))
