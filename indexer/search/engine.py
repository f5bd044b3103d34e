"""The search engine: a text (or an example image) in, ranked clips and images out.

query → normalise + tokenise → text encoder → ITC vector → FAISS top-N, with the metadata filters applied inside the
search → clip records from the catalog (only `ready` clips: a search during an index run sees whole files only) →
the top `rerank_k` re-scored by the fusion encoder's ITM head on each clip's visual tokens (from the feature store,
or recomputed from the file when the store keeps none) → final score, one formula for videos and images
(`indexer.search.scoring`: cosine / τ + ITM log-odds); candidates beyond `rerank_k` keep their ITC order below →
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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
import torch

from indexer.search.results import SearchResponse, SearchResult
from indexer.search.scoring import DEFAULT_RERANK_K, ENGINE_SCORER, RerankChoice, final_scores
from indexer.search.serving import NotServable, OpenClip, Playable, open_clip, playable
from indexer.settings import Settings, default_model_dir
from indexer.store.archive import Archive, ArchiveError, ArchiveStats
from indexer.store.db.records import ClipRecord, SearchFilters
from indexer.store.runtime import serve
from mplug2.bundle import ModelBundle, load_model_bundle
from mplug2.model import TextOutput

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
    "Query",
    "RerankChoice",
    "SearchEngine",
    "SearchFilters",
    "SearchResponse",
    "SearchResult",
    "read_query_image",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Query:
    """One search: a text (or an example image, uint8 [H, W, 3]) and how to answer it (see `SearchEngine.search`)."""

    query: str | np.ndarray
    k: int = 20
    rerank_k: int | None = None
    filters: SearchFilters | None = None
    one_per_file: bool = False


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
            bundle = load_model_bundle(name, device=device)
            serve(bundle, settings.runtime, archive.runtime, settings.home, prepare=("text",))
            return cls(settings, bundle, archive=archive)
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
        return self.search_batch([Query(query, k, rerank_k, filters, one_per_file)])[0]

    def search_batch(self, queries: Sequence[Query]) -> list[SearchResponse]:
        """Several searches at once, each answered as `search` would: the texts are encoded in one pass and every
        re-ranked (query, clip) pair of every query goes through the ITM head together (the HTTP API batches
        concurrent requests this way). Shared stages report the batch's time in each response's timings."""
        started = time.perf_counter()
        self.refresh()
        shared = {"refresh": time.perf_counter() - started}
        texts = [i for i, q in enumerate(queries) if isinstance(q.query, str) and q.query.strip()]
        started = time.perf_counter()
        text = self.bundle.encode_texts([queries[i].query for i in texts], kind="video") if texts else None
        vectors: dict[int, np.ndarray] = {}
        if text is not None:
            feats = text.feat.cpu().numpy()
            vectors = {i: feats[row : row + 1] for row, i in enumerate(texts)}
        text_row = {i: row for row, i in enumerate(texts)}
        for i, q in enumerate(queries):
            if not isinstance(q.query, str):
                vectors[i] = self.bundle.encode_images(np.asarray(q.query)[None]).feat.cpu().numpy()
        shared["encode_query"] = time.perf_counter() - started
        found: dict[int, tuple[list[ClipRecord], np.ndarray, dict]] = {}
        for i in vectors:
            found[i] = self._found(queries[i], vectors[i], dict(shared))
        itm = {i: np.full((len(records), 2), np.nan) for i, (records, _, _) in found.items()}
        pairs = [(i, position) for i in found if i in text_row for position in range(self._depth(queries[i], found[i]))]
        if pairs:
            started = time.perf_counter()
            logits = self._itm(text, [text_row[i] for i, _ in pairs], [found[i][0][p] for i, p in pairs])
            for (i, position), row in zip(pairs, logits, strict=True):
                itm[i][position] = row
            for i in {i for i, _ in pairs}:
                found[i][2]["rerank"] = time.perf_counter() - started
        responses = []
        for i, q in enumerate(queries):
            if i not in found:
                responses.append(SearchResponse(_label(q.query), [], dict(shared)))
                continue
            records, itc, timings = found[i]
            results = _rank(records, itc, itm[i], q.k, q.one_per_file, self.bundle.temperature)
            timings["total"] = sum(timings.values())
            reranked = int(np.count_nonzero(~np.isnan(itm[i][:, 0])))
            responses.append(SearchResponse(_label(q.query), results, timings, len(records), reranked))
        return responses

    def _found(self, query: Query, vector: np.ndarray, timings: dict) -> tuple[list[ClipRecord], np.ndarray, dict]:
        """One query's candidates (records, ITC scores) with its filters applied, and its timings."""
        allowed = None
        if query.filters is not None and not query.filters.is_empty():
            started = time.perf_counter()
            allowed = self.archive.clip_ids_matching(query.filters)
            timings["filter"] = time.perf_counter() - started
            if len(allowed) == 0:
                return [], np.zeros(0), timings
        wanted = max(query.k, self._rerank_k(query))
        records, itc = self._candidates(vector, wanted, allowed, query.one_per_file, query.k, timings)
        return records, itc, timings

    def _rerank_k(self, query: Query) -> int:
        """How many candidates of this query the ITM head re-ranks (0 for an image query or a model without it)."""
        rerank_k = self.rerank_choice.rerank_k if query.rerank_k is None else query.rerank_k
        return rerank_k if (isinstance(query.query, str) and self.bundle.with_fusion) else 0

    def _depth(self, query: Query, found: tuple[list[ClipRecord], np.ndarray, dict]) -> int:
        return min(self._rerank_k(query), len(found[0]))

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

    def _itm(self, text: TextOutput, rows: list[int], records: list[ClipRecord]) -> np.ndarray:
        """ITM logits [N, 2] (no-match, match) of text row `rows[i]` against record i's visual tokens."""
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
            scores = self.bundle.itm_pair_logits(text[[rows[p] for p in positions]], visual)
            logits[positions] = scores.cpu().numpy()
        return logits

    def _recompute_tokens(self, records: list[ClipRecord]) -> list[np.ndarray | None]:
        """Visual tokens straight from the files (feature mode `none`), decoded in a worker process."""
        # Imported here: the decoders and the worker pool (psutil, PIL) cost a search from the shell time that
        # only an archive without stored tokens needs.
        from indexer.media.decode import DecodeResult
        from indexer.media.request import model_request
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


def read_query_image(source: Path | BinaryIO, name: str | None = None) -> np.ndarray:
    """An example image for a search by image (a file, or bytes as an upload `name`d): uint8 [H, W, 3], upright as
    its EXIF says."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(source) as image:
            return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
        raise ValueError(f"{name or source}: not an image PIL can read ({error})") from None


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
