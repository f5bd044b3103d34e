"""The re-rank choice a model folder records (rerank.json): made on a validation set, switched on only where re-ranking
beats ITC alone by 2 points of R@1 on both kinds."""

from __future__ import annotations

from pathlib import Path

from indexer.settings import default_model_dir
from indexer.synthetic.quality import DEPTHS, MARGIN, choose_rerank, gains_the_margin
from mplug2.bundle import load_model_bundle


def test_two_points_means_two_points() -> None:
    assert MARGIN == 0.02
    exactly = {"video": {0: 236 / 300, 8: 244 / 300}, "image": {0: 55 / 100, 8: 57 / 100}}
    assert gains_the_margin(exactly, 8), "57 of 100 against 55 is 2 points"
    one_short = {"video": {0: 236 / 300, 8: 244 / 300}, "image": {0: 55 / 100, 8: 56 / 100}}
    assert not gains_the_margin(one_short, 8), "both kinds must gain"
    worse = {"video": {0: 0.8, 8: 0.9}, "image": {0: 0.6, 8: 0.5}}
    assert not gains_the_margin(worse, 8)


def test_the_choice_follows_the_validation_figures(synthetic_media: Path, tmp_path: Path) -> None:
    choice = choose_rerank(load_model_bundle(default_model_dir()), synthetic_media, tmp_path, "a small set")
    by_kind = {
        kind: {int(depth): r1 for depth, r1 in choice.validation[f"{kind}_R@1_by_depth"].items()}
        for kind in ("video", "image")
    }
    assert all(set(r1) == {0, *DEPTHS} and all(0 <= v <= 1 for v in r1.values()) for r1 in by_kind.values())
    assert choice.chosen_by == "validation on a small set"
    # The depth tried is the one with the best mean of the two kinds (the shallowest of equals).
    best = max(DEPTHS, key=lambda depth: (by_kind["video"][depth] + by_kind["image"][depth], -depth))
    assert choice.helps == gains_the_margin(by_kind, best)
    assert choice.rerank_k == (best if choice.helps else 0)
