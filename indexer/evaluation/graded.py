"""Graded relevance: how many of a composed query's attributes its results hold. numpy only.

A composed query names a combination of attributes (size, colour, shape, motion, background, ...), often one that
no item holds in full. Each item's gain for it is the number of the query's attributes the item shares (its
attribute overlap); the best achievable is what the best items of the collection hold. The figures:
- nDCG@10 with the overlap as gain (the ideal ranking: every item sorted by overlap);
- share@K: the attributes the first K results hold, over the most any K items of the collection hold (share@1:
  the first result's overlap over the best single item's);
- full match first: where some item holds every attribute, how often the first result is one of them.
Ties in score break pessimistically (the tied item with less overlap ranks first), as `metrics.best_ranks` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

NDCG_DEPTH = 10
SHARE_CUTOFFS = tuple(range(1, 11))  # share@K for the curve; the headline figures are K = 1 and K = 5


@dataclass(frozen=True)
class ComposedQuery:
    text: str
    attributes: dict[str, str]  # the attributes the text names, by name


def overlap_gains(queries: Sequence[ComposedQuery], item_attributes: Sequence[dict]) -> np.ndarray:
    """[Q, N] the number of each query's attributes each item holds."""
    gains = np.zeros((len(queries), len(item_attributes)), dtype=np.int64)
    for row, query in enumerate(queries):
        for name, value in query.attributes.items():
            gains[row] += np.fromiter((item.get(name) == value for item in item_attributes), bool, len(item_attributes))
    return gains


def ranked_gains(scores: np.ndarray, gains: np.ndarray, depth: int) -> np.ndarray:
    """[Q, depth] the gains of each query's first `depth` results by score (ties: least gain first)."""
    depth = min(depth, scores.shape[1])
    order = np.lexsort((gains, -np.asarray(scores, dtype=np.float64)), axis=1)[:, :depth]
    return np.take_along_axis(gains, order, axis=1)


def graded_metrics(scores: np.ndarray, gains: np.ndarray, names_per_query: Sequence[int]) -> dict[str, float]:
    """nDCG@10, share@1, share@5, the share curve over SHARE_CUTOFFS and full-match-first for score matrix `scores`
    [Q, N] (higher first) against `gains` [Q, N]; `names_per_query` [Q]: how many attributes each query names."""
    deepest = max(NDCG_DEPTH, max(SHARE_CUTOFFS))
    got = ranked_gains(scores, gains, deepest).astype(np.float64)
    ideal = -np.sort(-gains, axis=1)[:, : got.shape[1]].astype(np.float64)
    discount = 1.0 / np.log2(np.arange(2, NDCG_DEPTH + 2))[: min(NDCG_DEPTH, got.shape[1])]
    dcg = got[:, : len(discount)] @ discount
    idcg = ideal[:, : len(discount)] @ discount
    scored = idcg > 0  # a query no item shares anything with has no ranking to grade
    figures: dict[str, float] = {
        "queries": float(len(gains)),
        f"nDCG@{NDCG_DEPTH}": float(np.mean(dcg[scored] / idcg[scored])) if scored.any() else 0.0,
    }
    curve = []
    for cutoff in SHARE_CUTOFFS:
        best = ideal[:, :cutoff].sum(axis=1)
        curve.append(float(np.mean(got[scored, :cutoff].sum(axis=1) / best[scored])) if scored.any() else 0.0)
    figures["share@1"], figures["share@5"] = curve[0], curve[4]
    figures["share_curve"] = curve
    full = gains.max(axis=1) == np.asarray(names_per_query)
    figures["queries_with_a_full_match"] = float(full.sum())
    if full.any():
        figures["full_match_first"] = float(np.mean(got[full, 0] == np.asarray(names_per_query)[full]))
    partial = ~full & scored
    if partial.any():
        figures["share@1_without_a_full_match"] = float(np.mean(got[partial, 0] / ideal[partial, 0]))
    return figures


def first_result_gains(scores: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """[Q] the overlap of each query's first result."""
    return ranked_gains(scores, gains, 1)[:, 0]


@dataclass
class GradedResult:
    """Each scorer's graded figures on a set of composed queries, and what each query's first result held."""

    queries: list[ComposedQuery]
    best: np.ndarray  # [Q] the most of each query's attributes any evaluated item holds
    figures: dict[str, dict[str, float]]  # scorer -> graded_metrics
    first: dict[str, np.ndarray]  # scorer -> [Q] the overlap of each query's first result


def grade(queries: list[ComposedQuery], item_attributes: Sequence[dict], scores: dict[str, np.ndarray]) -> GradedResult:
    """The graded figures of each scorer's score matrix [Q, N] over the items whose attributes are given."""
    gains = overlap_gains(queries, item_attributes)
    names = [len(query.attributes) for query in queries]
    return GradedResult(
        queries,
        gains.max(axis=1),
        {label: graded_metrics(matrix, gains, names) for label, matrix in scores.items()},
        {label: first_result_gains(matrix, gains) for label, matrix in scores.items()},
    )
