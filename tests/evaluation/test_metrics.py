"""Retrieval metrics against similarity matrices worked out by hand: ties count against the model (the right item
ranks below every candidate that scores the same), several ground truths count their best, re-ranking keeps the
candidates outside the top k below the re-ranked ones."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.evaluation.metrics import (
    best_ranks,
    first_result_attributes,
    rank_metrics,
    rerank_scores,
    retrieval_metrics,
    top_k,
)


def test_ranks_with_ties_and_several_ground_truths() -> None:
    sim = np.array(
        [
            [0.9, 0.1, 0.5],  # truth 0 is the best: rank 0
            [0.3, 0.3, 0.7],  # truth 1 ties with item 0 and trails item 2: both count against it, rank 2
            [0.2, 0.8, 0.6],  # truths {0, 2}: the better one (2, 0.6) trails only item 1: rank 1
        ]
    )
    assert best_ranks(sim, [[0], [1], [0, 2]]).tolist() == [0, 2, 1]


def test_rank_metrics_by_hand() -> None:
    ranks = np.array([0, 2, 1, 7, 12])  # 0-based
    metrics = rank_metrics(ranks, "t2v_")
    assert metrics["t2v_R@1"] == pytest.approx(1 / 5)
    assert metrics["t2v_R@5"] == pytest.approx(3 / 5)
    assert metrics["t2v_R@10"] == pytest.approx(4 / 5)
    assert metrics["t2v_R@mean"] == pytest.approx((0.2 + 0.6 + 0.8) / 3)
    assert metrics["t2v_MdR"] == 3.0  # median of 1, 3, 2, 8, 13
    assert metrics["t2v_MnR"] == pytest.approx((1 + 3 + 2 + 8 + 13) / 5)


def test_both_directions_with_several_captions_per_video() -> None:
    # 2 videos, 4 captions: captions 0, 1 describe video 0; captions 2, 3 describe video 1.
    sim = np.array([[0.9, 0.2], [0.1, 0.4], [0.3, 0.8], [0.6, 0.5]])
    metrics = retrieval_metrics(sim, [[0], [0], [1], [1]], [[0, 1], [2, 3]])
    assert metrics["t2v_R@1"] == pytest.approx(0.5)  # captions 0 and 2 rank their video first; 1 and 3 do not
    assert metrics["v2t_R@1"] == pytest.approx(1.0)  # each video's best caption (0: 0.9, 1: 0.8) is its top text
    assert metrics["RSUM"] == pytest.approx(0.5 + 1 + 1 + 1 + 1 + 1)


def test_all_equal_scores_rank_last() -> None:
    assert best_ranks(np.zeros((3, 3)), [[0], [1], [2]]).tolist() == [2, 2, 2]


def test_rerank_floors_everything_outside_the_top_k_and_ranks_ties_pessimistically() -> None:
    sim = np.array([[0.5, 0.4, 0.3, 0.2]])
    candidates = top_k(sim, 2)
    assert candidates.tolist() == [[0, 1]]
    final = rerank_scores(sim.shape, candidates, np.array([[-1.0, 3.0]]))
    assert best_ranks(final, [[1]]).tolist() == [0]  # the ITM logit lifted item 1 over item 0
    # Not re-ranked: -100 as in the official code, below both re-ranked candidates. Outside the top k every item
    # ties at -100 and loses its ITC order (item 2 scored above item 3, yet both rank last): a tie counts against
    # the ground truth, so re-ranked MnR is pessimistic (the official code's argsort breaks the tie by position).
    assert best_ranks(final, [[2]]).tolist() == [3] and best_ranks(final, [[3]]).tolist() == [3]
    assert final[0, 0] == -1.0 and final[0, 1] == 3.0


def test_first_result_attributes_count_only_the_queries_that_name_each() -> None:
    items = [{"colour": "red", "shape": "star"}, {"colour": "blue", "shape": "star"}]
    queries = [{"colour": "red", "shape": "star"}, {"colour": "red"}, {"shape": "circle"}]
    shares = first_result_attributes(queries, items, np.array([0, 1, 1]))
    assert shares == {"colour": 0.5, "shape": 0.5}
    assert first_result_attributes([{}, {}], items, np.array([0, 1])) == {}
