"""The final score: one scale for videos and images, the official per-kind recipe apart, and the re-rank choice a
model folder records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexer.search.scoring import DEFAULT_RERANK_K, RerankChoice, final_scores

LOGITS = np.array([[-1.0, 2.0], [0.5, 0.5]])  # (no-match, match): log-odds 3 and 0
COSINE = np.array([0.3, 0.3])


def test_the_calibrated_score_treats_every_kind_alike() -> None:
    video = final_scores("calibrated", COSINE, LOGITS, True, temperature=0.05)
    image = final_scores("calibrated", COSINE, LOGITS, False, temperature=0.05)
    np.testing.assert_allclose(video, image)
    np.testing.assert_allclose(video, [0.3 / 0.05 + 3.0, 0.3 / 0.05 + 0.0])


def test_the_official_recipe_adds_the_cosine_for_videos_only() -> None:
    mixed = final_scores("official", COSINE, LOGITS, np.array([True, False]), temperature=0.05)
    np.testing.assert_allclose(mixed, [2.0 + 0.3, 0.5])


def test_an_unknown_scorer_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown scorer"):
        final_scores("best", COSINE, LOGITS, True, 0.05)


def test_a_model_folder_records_its_choice(tmp_path: Path) -> None:
    assert RerankChoice.of_model(str(tmp_path)) == RerankChoice(rerank_k=DEFAULT_RERANK_K)
    assert RerankChoice.of_model("mplug2-tiny").helps is None, "a config name has no folder and no choice"
    choice = RerankChoice(rerank_k=0, helps=False, chosen_by="validation", validation={"video": {"0": 0.3}})
    choice.write(tmp_path)
    assert RerankChoice.of_model(str(tmp_path)) == choice
    assert choice.summary().startswith("re-ranking off")
