"""How well a model does on the synthetic benchmark, and which re-ranking its validation chooses.

`measure` gives the figures the bundled model reports, per query group and per scorer: text-to-video R@1; how often
the first result has the query's colour, shape, motion, background and size; R@1 on the motion-direction queries;
the direction twins (each direction video beside its time-reversed copy, captioned with the opposite direction)
against the same queries without the twins; the same model fed one frame per video; text-to-image R@1.

`choose_rerank` decides, on a validation set (another seed, never the test split), how deep the engine re-ranks
with its one-scale score, or that re-ranking does not help this model at all.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from indexer.evaluation.datasets import load_benchmark
from indexer.evaluation.metrics import best_ranks, first_result_attributes
from indexer.evaluation.runner import EvalResult, EvalSettings, evaluate
from indexer.search.scoring import ENGINE_SCORER, RerankChoice
from indexer.synthetic.attributes import DIRECTIONS
from mplug2.bundle import ModelBundle

ATTRIBUTES = ("colour", "shape", "motion", "background", "size")
DEPTHS = (4, 8, 16, 32, 64)  # re-rank depths validation tries
MARGIN = 0.02  # re-ranking must beat ITC by this much R@1 on both kinds on validation to be switched on (2 points)


def direction_rows(result: EvalResult) -> list[int]:
    return [
        i for i, attributes in enumerate(result.benchmark.text_attributes) if attributes.get("motion") in DIRECTIONS
    ]


def r_at_1(ranks: np.ndarray, rows: list[int] | None = None) -> float:
    selected = ranks if rows is None else ranks[rows]
    return float(np.mean(selected < 1))


def first_result_matches(result: EvalResult, scorer: str) -> dict[str, float]:
    """For each of the synthetic attributes: the share of queries whose first result has the query's value of it."""
    benchmark = result.benchmark
    shares = first_result_attributes(benchmark.text_attributes, benchmark.item_attributes(), result.top1[scorer])
    return {name: shares[name] for name in ATTRIBUTES if name in shares}


def _scorers(result: EvalResult) -> list[str]:
    return [s for s in ("itc", "model_choice", "calibrated", "official") if s in result.metrics]


def measure(bundle: ModelBundle, data_dir: Path, cache_dir: Path, settings: EvalSettings) -> dict:
    annotations = data_dir / "annotations"
    videos = evaluate(bundle, load_benchmark("jsonl", annotations / "test_videos.jsonl", data_dir), settings, cache_dir)
    one_frame = evaluate(
        bundle,
        load_benchmark("jsonl", annotations / "test_videos.jsonl", data_dir),
        replace(settings, num_frames=1),
        cache_dir,
    )
    images = evaluate(bundle, load_benchmark("jsonl", annotations / "test_images.jsonl", data_dir), settings, cache_dir)
    # Sets made before the generator wrote direction twins have none: their figures are then left out.
    twins = alone = None
    if (annotations / "test_twins.jsonl").is_file():
        twins = evaluate(
            bundle, load_benchmark("jsonl", annotations / "test_twins.jsonl", data_dir), settings, cache_dir
        )
        alone = evaluate(
            bundle, load_benchmark("jsonl", annotations / "test_directions.jsonl", data_dir), settings, cache_dir
        )
    report: dict = {
        "test_videos": videos.counts["items_evaluated"],
        "test_images": images.counts["items_evaluated"],
        "direction_twin_pairs": alone.counts["items_evaluated"] if alone else 0,
        "motion_direction_queries": len(direction_rows(videos)),
        "rerank_k": videos.counts.get("rerank_k"),
        "model_choice": vars(RerankChoice.of_model(bundle.name)) if bundle.with_fusion else None,
        "groups": {},
    }
    for scorer in _scorers(videos):
        twin_r1 = r_at_1(twins.ranks[scorer]["t2v"]) if twins else None
        alone_r1 = r_at_1(alone.ranks[scorer]["t2v"]) if alone else None
        report["groups"][scorer] = {
            "t2v_R@1": r_at_1(videos.ranks[scorer]["t2v"]),
            "first_result_has_the_query's": first_result_matches(videos, scorer),
            "motion_direction_t2v_R@1": r_at_1(videos.ranks[scorer]["t2v"], direction_rows(videos)),
            "direction_twins_t2v_R@1": twin_r1,
            "direction_queries_without_twins_t2v_R@1": alone_r1,
            "twin_ratio": twin_r1 / alone_r1 if twin_r1 is not None and alone_r1 else None,
            "one_frame_t2v_R@1": r_at_1(one_frame.ranks[scorer]["t2v"]),
            "one_frame_motion_direction_t2v_R@1": r_at_1(one_frame.ranks[scorer]["t2v"], direction_rows(one_frame)),
            "image_t2i_R@1": r_at_1(images.ranks[scorer]["t2v"]),
        }
    report["video_metrics"] = videos.metrics
    report["image_metrics"] = images.metrics
    report["one_frame_metrics"] = one_frame.metrics
    report["twin_metrics"] = twins.metrics if twins else None
    return report


def _r1_by_depth(result: EvalResult, bundle: ModelBundle) -> dict[int, float]:
    """Text-to-item R@1 with the engine's scorer at each depth; depth 0 is ITC alone."""
    assert result.reranked is not None and result.similarity is not None
    is_video = result.benchmark.kind == "video"
    figures = {0: r_at_1(result.ranks["itc"]["t2v"])}
    for depth in DEPTHS:
        final_t2v, _ = result.reranked.final_matrices(
            result.similarity, ENGINE_SCORER, depth, is_video, bundle.temperature
        )
        figures[depth] = r_at_1(best_ranks(final_t2v, result.benchmark.text_to_items))
    return figures


def gains_the_margin(r1_by_kind: dict[str, dict[int, float]], depth: int) -> bool:
    """Re-ranking at `depth` beats ITC alone (depth 0) by MARGIN on every kind. R@1 is hits over queries: 57 of 100
    against 55 is the 2 points asked for, though 0.55 + 0.02 > 0.57 in floating point, hence the tolerance."""
    return all(r1[depth] - r1[0] >= MARGIN - 1e-9 for r1 in r1_by_kind.values())


def choose_rerank(bundle: ModelBundle, validation_dir: Path, cache_dir: Path, label: str) -> RerankChoice:
    """The re-rank depth with the best mean of video and image R@1 on the validation set under the engine's scorer,
    kept only if it beats ITC alone on both kinds (re-ranking must never hurt); else re-ranking off."""
    settings = EvalSettings(rerank_k=max(DEPTHS), model_choice=RerankChoice(rerank_k=0), progress=False)
    annotations = validation_dir / "annotations"
    by_kind = {}
    for kind, file in (("video", "test_videos.jsonl"), ("image", "test_images.jsonl")):
        result = evaluate(bundle, load_benchmark("jsonl", annotations / file, validation_dir), settings, cache_dir)
        by_kind[kind] = _r1_by_depth(result, bundle)
    mean = {depth: (by_kind["video"][depth] + by_kind["image"][depth]) / 2 for depth in (0, *DEPTHS)}
    best = max(DEPTHS, key=lambda depth: (mean[depth], -depth))
    helps = gains_the_margin(by_kind, best)
    validation = {f"{kind}_R@1_by_depth": {str(d): round(v, 4) for d, v in r.items()} for kind, r in by_kind.items()}
    return RerankChoice(
        rerank_k=best if helps else 0,
        scorer=ENGINE_SCORER,
        helps=helps,
        chosen_by=f"validation on {label}",
        validation=validation,
    )
