"""How well a model does on the synthetic benchmark's held-out test split: the figures the bundled model reports.

Text-to-video R@1 with and without ITM re-ranking, R@1 on the motion-direction queries alone (left, right, up,
down: the ones only several frames can answer), the same model fed one frame per video as a baseline, and
text-to-image R@1 on the test images.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from indexer.evaluation.datasets import load_benchmark
from indexer.evaluation.runner import EvalResult, EvalSettings, evaluate
from indexer.synthetic.attributes import DIRECTIONS
from mplug2.bundle import ModelBundle


def direction_rows(result: EvalResult) -> list[int]:
    return [
        i for i, attributes in enumerate(result.benchmark.text_attributes) if attributes.get("motion") in DIRECTIONS
    ]


def r_at_1(ranks: np.ndarray, rows: list[int] | None = None) -> float:
    selected = ranks if rows is None else ranks[rows]
    return float(np.mean(selected < 1))


def measure(bundle: ModelBundle, data_dir: Path, cache_dir: Path, settings: EvalSettings) -> dict:
    videos = load_benchmark("jsonl", data_dir / "annotations" / "test_videos.jsonl", data_dir)
    images = load_benchmark("jsonl", data_dir / "annotations" / "test_images.jsonl", data_dir)
    full = evaluate(bundle, videos, settings, cache_dir)
    one_frame = evaluate(bundle, videos, replace(settings, num_frames=1), cache_dir)
    pictures = evaluate(bundle, images, settings, cache_dir)
    motion = direction_rows(full)
    report = {
        "test_videos": full.counts["items_evaluated"],
        "test_images": pictures.counts["items_evaluated"],
        "rerank_k": full.counts.get("rerank_k"),
        "t2v_R@1_itc": full.metrics["itc"]["t2v_R@1"],
        "motion_direction_queries": len(motion),
        "motion_t2v_R@1_itc": r_at_1(full.ranks["itc"]["t2v"], motion),
        "one_frame_t2v_R@1_itc": one_frame.metrics["itc"]["t2v_R@1"],
        "one_frame_motion_t2v_R@1_itc": r_at_1(one_frame.ranks["itc"]["t2v"], direction_rows(one_frame)),
        "image_t2i_R@1_itc": pictures.metrics["itc"]["t2v_R@1"],
        "video_metrics": full.metrics,
        "image_metrics": pictures.metrics,
        "one_frame_metrics": one_frame.metrics,
    }
    if "rerank" in full.metrics:
        report.update(
            {
                "t2v_R@1_rerank": full.metrics["rerank"]["t2v_R@1"],
                "motion_t2v_R@1_rerank": r_at_1(full.ranks["rerank"]["t2v"], motion),
                "one_frame_t2v_R@1_rerank": one_frame.metrics["rerank"]["t2v_R@1"],
                "one_frame_motion_t2v_R@1_rerank": r_at_1(one_frame.ranks["rerank"]["t2v"], direction_rows(one_frame)),
                "image_t2i_R@1_rerank": pictures.metrics["rerank"]["t2v_R@1"],
            }
        )
    return report
