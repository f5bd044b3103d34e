"""Graded relevance by attribute overlap: the figures on small hand-worked cases, pessimistic ties, and the composed
queries of a synthetic set (half held in full by an item, half by none, each worded with its attributes)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from indexer.evaluation.graded import ComposedQuery, grade, graded_metrics, overlap_gains
from indexer.synthetic.attributes import COLOUR_WORDS, SHAPE_WORDS
from indexer.synthetic.compose import composed_queries

ITEMS = [
    {"colour": "red", "shape": "circle", "motion": "up", "background": "black", "size": "small"},
    {"colour": "red", "shape": "square", "motion": "left", "background": "grey", "size": "large"},
    {"colour": "blue", "shape": "circle", "motion": "left", "background": "black", "size": "small"},
]


def test_overlap_counts_the_query_attributes_each_item_holds() -> None:
    query = ComposedQuery("a red circle moves to the left", {"colour": "red", "shape": "circle", "motion": "left"})
    assert overlap_gains([query], ITEMS).tolist() == [[2, 2, 2]]
    query = ComposedQuery("a small red circle", {"colour": "red", "shape": "circle", "size": "small"})
    assert overlap_gains([query], ITEMS).tolist() == [[3, 1, 2]]


def test_graded_figures_on_a_worked_case() -> None:
    gains = np.array([[3, 1, 2, 0]])
    scores = np.array([[0.1, 0.9, 0.5, 0.0]])  # ranks gains 1, 2, 3, 0 (the ideal is 3, 2, 1, 0)
    figures = graded_metrics(scores, gains, [3])
    dcg = 1 + 2 / math.log2(3) + 3 / math.log2(4)
    ideal = 3 + 2 / math.log2(3) + 1 / math.log2(4)
    assert figures["nDCG@10"] == pytest.approx(dcg / ideal)
    assert figures["share@1"] == pytest.approx(1 / 3)
    assert figures["share_curve"][1] == pytest.approx(3 / 5)  # 1 + 2 of the best two's 3 + 2
    assert figures["share@5"] == pytest.approx(1.0)  # only four items: the first five hold all there is
    assert figures["queries_with_a_full_match"] == 1 and figures["full_match_first"] == 0.0

    perfect = graded_metrics(gains.astype(float), gains, [3])
    assert perfect["nDCG@10"] == pytest.approx(1.0) and perfect["share@1"] == 1.0 and perfect["full_match_first"] == 1


def test_without_a_full_match_the_best_partial_match_is_the_target() -> None:
    gains = np.array([[2, 1, 2]])  # no item holds all four attributes: two of them is the best achievable
    figures = graded_metrics(np.array([[0.3, 0.2, 0.1]]), gains, [4])
    assert figures["share@1"] == 1.0 and figures["share@1_without_a_full_match"] == 1.0
    assert figures["queries_with_a_full_match"] == 0 and "full_match_first" not in figures


def test_ties_rank_the_lesser_match_first() -> None:
    gains = np.array([[3, 0, 1]])
    figures = graded_metrics(np.zeros((1, 3)), gains, [3])  # a scorer that scores everything alike earns nothing
    assert figures["share@1"] == 0.0


def test_grade_reports_every_scorer_and_first_results() -> None:
    queries = [ComposedQuery("q", {"colour": "red", "shape": "circle"}), ComposedQuery("r", {"colour": "blue"})]
    scores = {"itc": np.array([[0.9, 0.1, 0.2], [0.9, 0.1, 0.2]]), "other": np.array([[0.1, 0.2, 0.9]] * 2)}
    result = grade(queries, ITEMS, scores)
    assert result.best.tolist() == [2, 1]
    assert result.first["itc"].tolist() == [2, 0] and result.first["other"].tolist() == [1, 1]
    assert result.figures["itc"]["share@1"] == pytest.approx(0.5)
    assert result.figures["other"]["share@1"] == pytest.approx(0.75)


def test_composed_queries_half_held_half_never_held() -> None:
    items = [
        {"colour": c, "shape": s, "motion": m, "background": b, "size": "small"}
        for c, s, m, b in [("red", "circle", "up", "black"), ("blue", "star", "left", "grey")] * 5
        + [("green", "square", "down", "navy"), ("pink", "hexagon", "right", "brown")]
    ]
    queries = composed_queries(items, "video", count=20, seed=3)
    assert len(queries) == 20
    held = {tuple(sorted(item.items())) for item in items}
    full = [tuple(sorted(query.attributes.items())) in held for query in queries]
    assert sum(full) == 10
    for query in queries:
        assert set(query.attributes) == {"size", "colour", "shape", "motion", "background"}
        assert any(word in query.text for word in COLOUR_WORDS[query.attributes["colour"]])
        assert any(word in query.text for word in SHAPE_WORDS[query.attributes["shape"]])
    assert [q.text for q in composed_queries(items, "video", count=20, seed=3)] == [q.text for q in queries]
    assert composed_queries([{"caption_only": True}], "video") == []  # annotations without attributes: none


def test_composed_image_queries_name_position_not_motion() -> None:
    items = [
        {"colour": "red", "shape": "circle", "motion": "still", "position": "top left", "background": "black"},
        {"colour": "blue", "shape": "star", "motion": "still", "position": "centre", "background": "grey"},
    ]
    queries = composed_queries(items, "image", count=6, seed=0)
    assert queries and all("motion" not in q.attributes and q.attributes["position"] in q.text for q in queries)
