"""The search engine: a text (or an example image) in, ranked clips and images out.

query → normalise + tokenise → text encoder → ITC vector → FAISS top-N, with the metadata filters applied inside the
search → clip records from the catalog (only `ready` clips: a search during an index run sees whole files only) →
the top `rerank_k` re-scored by the fusion encoder's ITM head on each clip's visual tokens (from the feature store,
or recomputed from the file when the store keeps none) → final score, one formula for videos and images
(`indexer.scoring`: cosine / τ + ITM log-odds); candidates beyond `rerank_k` keep their ITC order below →
optionally one result per file. Every stage is timed. How deep to re-rank, if at all, defaults to what the model's
own validation chose (its folder's rerank.json).

The engine reads through the archive only (it writes nothing) and is what the app talks to: search, thumbnails,
opening a result's file (`serving.py`: by clip id, only under an indexed root), browser previews, typed stats.
Before each query `refresh` reads the catalog's generation counter (one primary-key lookup); the index is synced
only when it changed.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from indexer.archive import Archive, ArchiveError, ArchiveStats
from indexer.db.records import ClipRecord, SearchFilters
from indexer.results import SearchResponse, SearchResult
from indexer.scoring import DEFAULT_RERANK_K, ENGINE_SCORER, RerankChoice, final_scores
from indexer.serving import NotServable, OpenClip, Playable, open_clip, playable
from indexer.settings import Settings, default_model_dir
from mplug2.bundle import ModelBundle, load_model_bundle

if TYPE_CHECKING:
    from indexer.media.workers import DecodePool

__all__ = [
    "DEFAULT_RERANK_K",
    "ArchiveError",
    "ArchiveStats",
    "Library",
    "NotServable",
    "OpenClip",
    "Playable",
    "RerankChoice",
    "SearchEngine",
    "SearchFilters",
    "SearchResponse",
    "SearchResult",
    "read_query_image",
]

log = logging.getLogger(__name__)


class SearchEngine:
    """Searches one archive with one model. Reads go through the archive; the engine writes nothing."""

    def __init__(
        self, settings: Settings, bundle: ModelBundle, workers: int = 1, archive: Archive | None = None
    ) -> None:
        self.settings = settings
        self.bundle = bundle
        self.archive = archive or Archive(settings)
        self.archive.check_model(bundle)
        self.archive.refresh()  # loads the index now, not on the first query
        self._workers = workers
        self._pool: DecodePool | None = None
        self.rerank_choice = RerankChoice.of_model(bundle.name)

    @classmethod
    def open(cls, settings: Settings, model: str | None = None, device: str | None = None) -> SearchEngine:
        """The engine over the archive in `settings`, with the model it was indexed with (or `model`)."""
        archive = Archive.open_indexed(settings)
        try:
            name = model or archive.model or str(default_model_dir())
            return cls(settings, load_model_bundle(name, device=device), archive=archive)
        except BaseException:
            archive.close()
            raise

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        self.archive.close()

    def refresh(self) -> bool:
        """Follow the database while an index run commits files. Returns True if the searchable set changed."""
        return self.archive.refresh()

    # search

    def search(
        self,
        query: str | np.ndarray,
        k: int = 20,
        rerank_k: int | None = None,
        filters: SearchFilters | None = None,
        one_per_file: bool = False,
    ) -> SearchResponse:
        """Top `k` results for a text query, or for an example image (uint8 [H, W, 3]; ITC only, as ITM needs text).
        `rerank_k`: candidates re-ranked by ITM; None: the model's choice (`rerank_choice`), 0: none."""
        timings: dict[str, float] = {}
        started = time.perf_counter()
        self.refresh()
        timings["refresh"] = time.perf_counter() - started
        is_text = isinstance(query, str)
        if is_text and not query.strip():
            return SearchResponse(query, [], timings)
        started = time.perf_counter()
        if is_text:
            text = self.bundle.encode_texts([query], kind="video")
            vector = text.feat.cpu().numpy()
        else:
            text = None
            vector = self.bundle.encode_images(np.asarray(query)[None]).feat.cpu().numpy()
        timings["encode_query"] = time.perf_counter() - started
        rerank_k = self.rerank_choice.rerank_k if rerank_k is None else rerank_k
        rerank_k = rerank_k if (is_text and self.bundle.with_fusion) else 0
        allowed = None
        if filters is not None and not filters.is_empty():
            started = time.perf_counter()
            allowed = self.archive.clip_ids_matching(filters)
            timings["filter"] = time.perf_counter() - started
            if len(allowed) == 0:
                return SearchResponse(_label(query), [], timings)
        records, itc = self._candidates(vector, max(k, rerank_k), allowed, one_per_file, k, timings)
        itm = np.full((len(records), 2), np.nan)
        if rerank_k and records:
            started = time.perf_counter()
            top = min(rerank_k, len(records))
            itm[:top] = self._itm(text, records[:top])
            timings["rerank"] = time.perf_counter() - started
        results = _rank(records, itc, itm, k, one_per_file, self.bundle.temperature)
        timings["total"] = sum(timings.values())
        reranked = int(np.count_nonzero(~np.isnan(itm[:, 0])))
        return SearchResponse(_label(query), results, timings, len(records), reranked)

    def _candidates(
        self, vector: np.ndarray, wanted: int, allowed: np.ndarray | None, one_per_file: bool, k: int, timings: dict
    ) -> tuple[list[ClipRecord], np.ndarray]:
        """Clip records and ITC scores of the best `wanted` ready clips (enough distinct files when one per file)."""
        fetch = wanted * (4 if one_per_file else 1)
        timings["vector_search"] = timings["metadata"] = 0.0
        while True:
            started = time.perf_counter()
            hits = self.archive.search(vector, fetch, allowed)
            timings["vector_search"] += time.perf_counter() - started
            valid = hits.ids[0] >= 0
            ids, scores = hits.ids[0][valid], hits.scores[0][valid]
            started = time.perf_counter()
            records = self.archive.clips(ids)
            timings["metadata"] += time.perf_counter() - started
            by_id = dict(zip(ids.tolist(), scores.tolist(), strict=True))
            itc = np.array([by_id[r.id] for r in records], dtype=np.float64)
            exhausted = len(ids) < fetch
            if not one_per_file or exhausted or len({r.media_id for r in records}) >= k:
                return records, itc
            fetch *= 4

    def _itm(self, text, records: list[ClipRecord]) -> np.ndarray:
        """ITM logits [N, 2] (no-match, match) of the query against each record's visual tokens."""
        tokens = self.archive.tokens([r.id for r in records])
        missing = [i for i, t in enumerate(tokens) if t is None]
        if missing:
            for position, computed in zip(missing, self._recompute_tokens([records[i] for i in missing]), strict=True):
                tokens[position] = computed
        logits = np.full((len(records), 2), np.nan)
        groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for position, array in enumerate(tokens):
            if array is not None:
                groups[array.shape].append(position)
        for positions in groups.values():  # pairs of one token count form one batch
            visual = torch.from_numpy(np.stack([tokens[p] for p in positions]).astype(np.float32))
            scores = self.bundle.itm_pair_logits(text[[0] * len(positions)], visual)
            logits[positions] = scores.cpu().numpy()
        return logits

    def _recompute_tokens(self, records: list[ClipRecord]) -> list[np.ndarray | None]:
        """Visual tokens straight from the files (feature mode `none`), decoded in a worker process."""
        # Imported here: the decoders and the worker pool (psutil, PIL) cost a search from the shell time that
        # only an archive without stored tokens needs.
        from indexer.media.decode import DecodeResult, model_request
        from indexer.media.workers import DecodePool

        if self._pool is None:
            self._pool = DecodePool(self._workers, timeout_s=60)
        requests = [
            model_request(self.bundle.config, r.path, r.kind, ((r.start, r.end if r.kind == "video" else None),), tag=i)
            for i, r in enumerate(records)
        ]
        tokens: list[np.ndarray | None] = [None] * len(records)
        for request, outcome in self._pool.imap(requests):
            if not isinstance(outcome, DecodeResult) or outcome.spans[0].frames is None:
                log.warning("cannot re-rank %s: %s", request.path, outcome)
                continue
            frames = outcome.spans[0].frames
            record = records[request.tag]
            output = (
                self.bundle.encode_videos(frames[None])
                if record.kind == "video"
                else self.bundle.encode_images(frames[:1])
            )
            tokens[request.tag] = output.tokens[0].cpu().numpy()
        return tokens

    # what the app shows beside the results

    def thumbnail(self, clip_id: int) -> bytes | None:
        return self.archive.thumbnail(clip_id)

    def open_clip(self, raw_clip_id: object) -> OpenClip:
        """A result the page asks to play, by its id (raises `NotServable` with the reason to show)."""
        return open_clip(self.archive, raw_clip_id)

    def playable(self, clip: OpenClip, preview_dir: Path) -> Playable:
        """The clip as the browser can play it (raises `NotServable` when it cannot be converted)."""
        return playable(self.archive, clip, preview_dir)

    def roots(self) -> list[str]:
        return self.archive.roots()

    def stats(self) -> ArchiveStats:
        return self.archive.stats()


def read_query_image(path: Path) -> np.ndarray:
    """An example image for a search by image: uint8 [H, W, 3], upright as its EXIF says."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"{path}: not an image PIL can read ({error})") from None


class Library:
    """The archive's contents for a page that needs no model (what is indexed, what failed): read-only."""

    def __init__(self, settings: Settings) -> None:
        self._archive = Archive(settings)

    def stats(self) -> ArchiveStats:
        return self._archive.stats()

    def close(self) -> None:
        self._archive.close()


def _label(query: str | np.ndarray) -> str:
    return query if isinstance(query, str) else "(example image)"


def _rank(
    records: list[ClipRecord], itc: np.ndarray, itm: np.ndarray, k: int, one_per_file: bool, temperature: float
) -> list[SearchResult]:
    """Re-ranked candidates first by final score (one scale for every kind), the rest after them in ITC order (the
    official -100 floor)."""
    reranked_rows = ~np.isnan(itm[:, 0])
    final = np.where(reranked_rows, final_scores(ENGINE_SCORER, itc, np.nan_to_num(itm), True, temperature), -np.inf)
    order = sorted(range(len(records)), key=lambda i: (not reranked_rows[i], -final[i], -itc[i]))
    results: list[SearchResult] = []
    files: set[int] = set()
    for i in order:
        record = records[i]
        if one_per_file and record.media_id in files:
            continue
        files.add(record.media_id)
        reranked = bool(reranked_rows[i])
        results.append(
            SearchResult(
                rank=len(results) + 1,
                clip_id=record.id,
                media_id=record.media_id,
                path=record.path,
                kind=record.kind,
                start=record.start,
                end=record.end,
                itc_score=float(itc[i]),
                itm_score=float(itm[i, 1] - itm[i, 0]) if reranked else None,
                score=float(final[i]) if reranked else float(itc[i]),
                reranked=reranked,
            )
        )
        if len(results) == k:
            break
    return results
