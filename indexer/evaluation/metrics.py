"""Retrieval metrics from similarity matrices, and the official re-rank combination. numpy only.

Ranks are 0-based; R@K counts queries whose best ground truth ranks below K; MdR and MnR report rank + 1 (MnR as
CLIP4Clip). A query with several ground truths takes the best of them (the official recipe, in both directions).
Ties are broken pessimistically: every other candidate scoring at least as high as the best ground truth counts
as ranked above it, so a model that scores everything alike gets no credit (argsort-based code would reward it
by the accident of index order).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

OUTSIDE_TOP_K = -100.0  # the official score for candidates not re-ranked


def best_ranks(sim: np.ndarray, ground_truth: Sequence[Sequence[int]]) -> np.ndarray:
    """For each query row of `sim` [Q, N]: the 0-based rank of its best-scored ground-truth candidate."""
    sim = np.asarray(sim, dtype=np.float64)
    ranks = np.empty(len(sim), dtype=np.int64)
    for query, truths in enumerate(ground_truth):
        if len(truths) == 0:
            raise ValueError(f"query {query} has no ground truth")
        row = sim[query]
        best = row[list(truths)].max()
        others = np.ones(len(row), dtype=bool)
        others[list(truths)] = False
        ranks[query] = int(np.count_nonzero(row[others] >= best))
    return ranks


def rank_metrics(ranks: np.ndarray, prefix: str = "") -> dict[str, float]:
    ranks = np.asarray(ranks)
    metrics = {f"{prefix}R@{k}": float(np.mean(ranks < k)) for k in (1, 5, 10)}
    metrics[f"{prefix}R@mean"] = float(np.mean([metrics[f"{prefix}R@{k}"] for k in (1, 5, 10)]))
    metrics[f"{prefix}MdR"] = float(np.median(ranks + 1))
    metrics[f"{prefix}MnR"] = float(np.mean(ranks + 1))
    return metrics


def retrieval_metrics(
    sim_t2v: np.ndarray,
    text_to_items: Sequence[Sequence[int]],
    item_to_texts: Sequence[Sequence[int]],
    sim_v2t: np.ndarray | None = None,
) -> dict[str, float]:
    """t2v and v2t metrics (R@1/5/10, their mean, MdR, MnR) and RSUM. `sim_v2t` defaults to `sim_t2v.T`
    (pass it when re-ranking made the two directions differ)."""
    sim_v2t = np.asarray(sim_t2v).T if sim_v2t is None else sim_v2t
    metrics = rank_metrics(best_ranks(sim_t2v, text_to_items), "t2v_")
    metrics.update(rank_metrics(best_ranks(sim_v2t, item_to_texts), "v2t_"))
    metrics["RSUM"] = sum(metrics[f"{d}_R@{k}"] for d in ("t2v", "v2t") for k in (1, 5, 10))
    return metrics


def top_k(sim: np.ndarray, k: int) -> np.ndarray:
    """Indices [Q, k'] of each row's k highest scores (k' = min(k, N)), best first."""
    k = min(k, sim.shape[1])
    candidates = np.argpartition(-sim, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(sim, candidates, axis=1), axis=1, kind="stable")
    return np.take_along_axis(candidates, order, axis=1)


def rerank_scores(shape: tuple[int, int], candidates: np.ndarray, final: np.ndarray) -> np.ndarray:
    """The official final matrix: each query row's `candidates` [Q, k] get their `final` scores [Q, k], every other
    entry -100 (so everything outside a row's top k ties below it; `best_ranks` breaks that tie pessimistically)."""
    matrix = np.full(shape, OUTSIDE_TOP_K, dtype=np.float64)
    matrix[np.arange(shape[0])[:, None], candidates] = final
    return matrix


def dual_softmax(sim: np.ndarray, scale: float = 100.0) -> np.ndarray:
    """CAMoE's dual softmax (a prior over the other direction; not part of the official mPLUG-2 recipe):
    each entry weighted by the softmax over queries of its column."""
    scaled = sim * scale
    prior = np.exp(scaled - scaled.max(axis=0, keepdims=True))
    prior /= prior.sum(axis=0, keepdims=True)
    return sim * prior


def ranks_subset(ranks: np.ndarray, rows: Sequence[int]) -> np.ndarray:
    return np.asarray(ranks)[list(rows)]


def first_result_attributes(
    query_attributes: Sequence[dict], item_attributes: Sequence[dict], top1: np.ndarray
) -> dict[str, float]:
    """For each attribute the queries name: the share of those queries whose first result (`top1`, an item row per
    query) has the query's value of it. Empty when the annotations carry no attributes."""
    names = sorted({name for query in query_attributes for name in query})
    shares = {}
    for name in names:
        hits = [
            item_attributes[int(top)].get(name) == query[name]
            for query, top in zip(query_attributes, top1, strict=True)
            if name in query
        ]
        shares[name] = float(np.mean(hits))
    return shares
