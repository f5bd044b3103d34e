"""The evaluation runner: embed every item once (decoded in the DecodePool), every text once, ITC similarities,
the official ITM re-rank of each query's top k in both directions, and the metrics with and without it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from indexer.evaluation.benchmark import RetrievalBenchmark
from indexer.evaluation.features import ItemFeatureCache
from indexer.evaluation.graded import ComposedQuery, GradedResult, grade
from indexer.evaluation.metrics import dual_softmax, rerank_scores, retrieval_metrics, top_k
from indexer.media.decode import DecodeResult
from indexer.media.request import model_request
from indexer.media.workers import DecodePool
from indexer.search.scoring import SCORERS, RerankChoice, final_scores
from mplug2.bundle import ModelBundle
from mplug2.model import TextOutput

log = logging.getLogger(__name__)


@dataclass
class EvalSettings:
    num_frames: int | None = None  # default: the model's
    rerank_k: int | None = None  # None: 128 for video, 256 for images (the official k_test); 0: no re-ranking
    rerank: bool = True
    model_choice: RerankChoice | None = None  # default: what the model folder records (rerank.json)
    dual_softmax: bool = False
    batch_size: int = 16
    workers: int = 2
    decode_timeout_s: float = 120.0
    progress: bool = True


@dataclass
class Reranked:
    """ITM logits of each text's top items and each item's top texts (candidates best-first by ITC)."""

    t2v_candidates: np.ndarray  # [Q, k]
    t2v_logits: np.ndarray  # [Q, k, 2] (no-match, match)
    v2t_candidates: np.ndarray  # [N, k]
    v2t_logits: np.ndarray  # [N, k, 2]

    @property
    def pairs(self) -> int:
        return self.t2v_candidates.size + self.v2t_candidates.size

    def final_matrices(
        self, sim: np.ndarray, scorer: str, depth: int, is_video: bool, temperature: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """The final t2v and v2t matrices when the top `depth` (at most the depth scored) are re-ranked by `scorer`:
        the candidates are best-first, so a shallower re-rank is a prefix of a deeper one."""
        return (
            reranked_matrix(sim, self.t2v_candidates, self.t2v_logits, scorer, depth, is_video, temperature),
            reranked_matrix(sim.T, self.v2t_candidates, self.v2t_logits, scorer, depth, is_video, temperature),
        )


def reranked_matrix(
    matrix: np.ndarray,
    candidates: np.ndarray,
    logits: np.ndarray,
    scorer: str,
    depth: int,
    is_video: bool,
    temperature: float,
) -> np.ndarray:
    """The final matrix when each row's first `depth` candidates (best-first by ITC) are re-ranked by `scorer`."""
    candidates, logits = candidates[:, :depth], logits[:, :depth]
    cosine = matrix[np.arange(len(matrix))[:, None], candidates]
    final = final_scores(scorer, cosine, logits, is_video, temperature)
    return rerank_scores(matrix.shape, candidates, final)


@dataclass
class EvalResult:
    benchmark: RetrievalBenchmark
    metrics: dict[str, dict[str, float]]  # "itc", each of SCORERS when re-ranked, "dual_softmax" -> metrics
    ranks: dict[str, dict[str, np.ndarray]]  # same keys -> {"t2v": [Q], "v2t": [N]}
    counts: dict[str, int]
    timings: dict[str, float]
    failures: dict[str, str] = field(default_factory=dict)
    similarity: np.ndarray | None = None
    reranked: Reranked | None = None  # the ITM logits behind the re-ranked scorers (any shallower depth derives)
    top1: dict[str, np.ndarray] = field(default_factory=dict)  # scorer -> each text's first-ranked item
    graded: GradedResult | None = None  # composed queries graded by attribute overlap, when given some


def default_rerank_k(kind: str) -> int:
    """The official evaluation's k_test: 128 candidates per video query, 256 per image query."""
    return 128 if kind == "video" else 256


def item_requests(benchmark: RetrievalBenchmark, bundle: ModelBundle, num_frames: int, rows: list[int]):
    for row in rows:
        item = benchmark.items[row]
        spans = ((item.start, item.end),)
        yield model_request(bundle.config, str(item.path), item.kind, spans, num_frames=num_frames, tag=row)


def embed_items(
    bundle: ModelBundle, benchmark: RetrievalBenchmark, settings: EvalSettings, cache_dir: Path, keep_tokens: bool
) -> tuple[ItemFeatureCache, dict[str, float]]:
    """Embed every item not yet in the cache; returns the cache and timings (decode wait, encode seconds)."""
    from tqdm import tqdm

    config = bundle.config
    num_frames = settings.num_frames or config.preprocess.num_frames
    grid = config.vision.grid
    frames_per_item = num_frames if benchmark.kind == "video" else 1
    token_shape = (1 + frames_per_item * grid * grid, config.text.hidden_size) if keep_tokens else None
    key = {
        "model": bundle.name,
        "weights": bundle.fingerprint,  # a model retrained in the same folder must not read the old features
        "config": config.to_dict(),
        "frames": num_frames,
        "tokens": keep_tokens,
        # torch fp32 adds nothing, so caches written before runtimes existed stay valid
        **(
            {}
            if (bundle.runtime, bundle.precision) == ("torch", "fp32")
            else {"runtime": [bundle.runtime, bundle.precision]}
        ),
        # Each file by where it is and how it looks now: two copies of a data set (or two synthetic seeds) share
        # their relative names, and a file replaced in place must be embedded again.
        "items": [(*_file_stamp(i.path), i.start, i.end) for i in benchmark.items],
    }
    cache = ItemFeatureCache(cache_dir, key, len(benchmark.items), config.embed_dim, token_shape)
    todo = [row for row in range(len(benchmark.items)) if cache.done[row] == 0]
    timings = {"encode_s": 0.0, "decode_wait_s": 0.0, "items_embedded": float(len(todo))}
    if not todo:
        return cache, timings
    batch_rows: list[int] = []
    batch_frames: list[np.ndarray] = []

    def flush_batch() -> None:
        started = time.perf_counter()
        frames = np.stack(batch_frames)
        output = bundle.encode_videos(frames) if benchmark.kind == "video" else bundle.encode_images(frames[:, 0])
        cache.write(batch_rows, output.feat.cpu().numpy(), output.tokens.cpu().numpy() if keep_tokens else None)
        cache.flush()
        timings["encode_s"] += time.perf_counter() - started
        batch_rows.clear()
        batch_frames.clear()

    with DecodePool(settings.workers, timeout_s=settings.decode_timeout_s) as pool:
        outcomes = pool.imap(item_requests(benchmark, bundle, num_frames, todo))
        waited = time.perf_counter()
        for request, outcome in tqdm(outcomes, total=len(todo), desc="embedding media", disable=not settings.progress):
            timings["decode_wait_s"] += time.perf_counter() - waited
            span = outcome.spans[0] if isinstance(outcome, DecodeResult) else None
            if span is None or span.frames is None:
                cache.fail(request.tag, str(outcome if span is None else span.error))
            else:
                batch_rows.append(request.tag)
                batch_frames.append(span.frames)
                if len(batch_rows) == settings.batch_size:
                    flush_batch()
            waited = time.perf_counter()
        if batch_rows:
            flush_batch()
    cache.flush()
    return cache, timings


def embed_texts(bundle: ModelBundle, texts: list[str], kind: str, batch_size: int = 256) -> TextOutput:
    parts = [bundle.encode_texts(texts[i : i + batch_size], kind) for i in range(0, len(texts), batch_size)]
    return TextOutput(
        torch.cat([p.tokens for p in parts]), torch.cat([p.mask for p in parts]), torch.cat([p.feat for p in parts])
    )


def rerank(
    bundle: ModelBundle, sim: np.ndarray, text: TextOutput, item_tokens: np.ndarray, k: int, progress: bool = True
) -> Reranked:
    """ITM as the official evaluation runs it: each text's top-k items and each item's top-k texts, each pair scored
    once by the ITM head."""
    from tqdm import tqdm

    t2v_candidates, v2t_candidates = top_k(sim, k), top_k(sim.T, k)
    with tqdm(
        total=t2v_candidates.size + v2t_candidates.size, desc="re-ranking (ITM)", unit="pair", disable=not progress
    ) as bar:
        result = Reranked(
            t2v_candidates,
            text_itm_logits(bundle, t2v_candidates, text, item_tokens, bar.update),
            v2t_candidates,
            np.zeros((*v2t_candidates.shape, 2)),
        )
        for item, candidates in enumerate(result.v2t_candidates):
            tokens = torch.from_numpy(item_tokens[[item] * len(candidates)].astype(np.float32))
            result.v2t_logits[item] = bundle.itm_pair_logits(text[candidates.tolist()], tokens).cpu().numpy()
            bar.update(len(candidates))
    return result


def text_itm_logits(
    bundle: ModelBundle,
    candidates: np.ndarray,
    text: TextOutput,
    item_tokens: np.ndarray,
    done: Callable[[int], object],
) -> np.ndarray:
    """[Q, k, 2] the ITM logits of each text with its candidate items [Q, k]; `done` hears each text's pair count."""
    logits = np.zeros((*candidates.shape, 2))
    for query, row in enumerate(candidates):
        tokens = torch.from_numpy(item_tokens[row].astype(np.float32))
        logits[query] = bundle.itm_pair_logits(text[[query] * len(row)], tokens).cpu().numpy()
        done(len(row))
    return logits


def grade_composed(
    bundle: ModelBundle,
    benchmark: RetrievalBenchmark,
    composed: list[ComposedQuery],
    item_feat: np.ndarray,
    item_tokens: np.ndarray | None,
    scorers: dict[str, tuple[str, int]],
    progress: bool,
) -> GradedResult:
    """The composed queries ranked by ITC and, given the items' tokens, re-ranked by each (scorer, depth)."""
    from tqdm import tqdm

    text = embed_texts(bundle, [query.text for query in composed], benchmark.kind)
    sim = text.feat.cpu().numpy() @ item_feat.T
    scores = {"itc": sim}
    if item_tokens is not None and scorers:
        candidates = top_k(sim, max(depth for _, depth in scorers.values()))
        with tqdm(total=candidates.size, desc="composed queries (ITM)", unit="pair", disable=not progress) as bar:
            logits = text_itm_logits(bundle, candidates, text, item_tokens, bar.update)
        is_video = benchmark.kind == "video"
        for label, (scorer, depth) in scorers.items():
            if depth == 0:  # the model's own choice may be no re-ranking at all
                scores[label] = sim
            else:
                scores[label] = reranked_matrix(sim, candidates, logits, scorer, depth, is_video, bundle.temperature)
    return grade(composed, benchmark.item_attributes(), scores)


def _file_stamp(path: Path) -> tuple[str, int | None, int | None]:
    """(absolute path, size, mtime in ns); size and time None for a file that is not there."""
    try:
        stat = path.stat()
    except OSError:
        return (str(path.resolve()), None, None)
    return (str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def evaluate(
    bundle: ModelBundle,
    benchmark: RetrievalBenchmark,
    settings: EvalSettings,
    cache_dir: Path,
    composed: list[ComposedQuery] | None = None,
) -> EvalResult:
    """Every metric of `benchmark`; with `composed` queries (over the same items' attributes), their graded figures
    too."""
    from indexer.evaluation.metrics import best_ranks

    started = time.perf_counter()
    total_texts = len(benchmark.texts)
    present, missing = benchmark.check_media()
    k = default_rerank_k(benchmark.kind) if settings.rerank_k is None else settings.rerank_k
    rerank_on = settings.rerank and bundle.with_fusion and k > 0
    cache, timings = embed_items(bundle, benchmark, settings, cache_dir, keep_tokens=rerank_on)
    failures = {benchmark.items[row].key: message for row, message in cache.errors().items()}
    failures.update({benchmark.items[row].key: "file not found" for row in missing})
    usable = [row for row in present if cache.done[row] == 1]
    subset, dropped_texts = benchmark.subset(usable)
    if not subset.items or not subset.texts:
        raise RuntimeError(f"nothing to evaluate: {len(failures)} of {len(benchmark.items)} items failed")
    text_started = time.perf_counter()
    text = embed_texts(bundle, subset.texts, benchmark.kind)
    timings["text_s"] = time.perf_counter() - text_started
    item_feat = np.asarray(cache.itc[usable])
    sim = text.feat.cpu().numpy() @ item_feat.T  # [texts, items]
    metrics = {"itc": retrieval_metrics(sim, subset.text_to_items, subset.item_to_texts)}
    ranks = {"itc": {"t2v": best_ranks(sim, subset.text_to_items), "v2t": best_ranks(sim.T, subset.item_to_texts)}}
    top1 = {"itc": sim.argmax(axis=1)}
    reranked = None
    if settings.dual_softmax:
        t2v, v2t = dual_softmax(sim), dual_softmax(sim.T)
        metrics["dual_softmax"] = retrieval_metrics(t2v, subset.text_to_items, subset.item_to_texts, v2t)
        ranks["dual_softmax"] = {
            "t2v": best_ranks(t2v, subset.text_to_items),
            "v2t": best_ranks(v2t, subset.item_to_texts),
        }
    counts = {
        "items": len(benchmark.items),
        "items_evaluated": len(usable),
        "items_missing": len(missing),
        "items_failed": len(benchmark.items) - len(usable) - len(missing),
        "texts": total_texts,
        "texts_evaluated": len(subset.texts),
        "texts_dropped": dropped_texts,
    }
    tokens = None
    scorers: dict[str, tuple[str, int]] = {}
    if rerank_on:
        rerank_started = time.perf_counter()
        tokens = np.asarray(cache.tokens[usable])
        chosen = settings.model_choice or RerankChoice.of_model(bundle.name)
        reranked = rerank(bundle, sim, text, tokens, max(k, chosen.rerank_k), settings.progress)
        timings["rerank_s"] = time.perf_counter() - rerank_started
        counts["itm_pairs"] = reranked.pairs
        counts["rerank_k"] = k
        counts["model_choice_rerank_k"] = chosen.rerank_k
        scorers = {scorer: (scorer, k) for scorer in SCORERS}
        scorers["model_choice"] = (chosen.scorer, chosen.rerank_k)
        for label, (scorer, depth) in scorers.items():
            if depth == 0:  # the model's own choice may be no re-ranking at all
                metrics[label], ranks[label], top1[label] = metrics["itc"], ranks["itc"], top1["itc"]
                continue
            is_video = benchmark.kind == "video"
            final_t2v, final_v2t = reranked.final_matrices(sim, scorer, depth, is_video, bundle.temperature)
            metrics[label] = retrieval_metrics(final_t2v, subset.text_to_items, subset.item_to_texts, final_v2t)
            ranks[label] = {
                "t2v": best_ranks(final_t2v, subset.text_to_items),
                "v2t": best_ranks(final_v2t, subset.item_to_texts),
            }
            top1[label] = final_t2v.argmax(axis=1)
    graded = None
    if composed:
        graded_started = time.perf_counter()
        graded = grade_composed(bundle, subset, composed, item_feat, tokens, scorers, settings.progress)
        timings["graded_s"] = time.perf_counter() - graded_started
        counts["composed_queries"] = len(composed)
    timings["total_s"] = time.perf_counter() - started
    return EvalResult(subset, metrics, ranks, counts, timings, failures, sim, reranked, top1, graded)
