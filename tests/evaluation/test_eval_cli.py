"""`mplug2-search eval` end to end on the synthetic benchmark's layout: a real model folder, real video files, one
missing and one broken video among them; the report folder's files; a second run reuses the cached features."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

from safetensors.torch import load_file, save_file

from tests.indexer.test_pipeline import REPO


def run_eval(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "indexer", "eval", *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_eval_reports_metrics_files_and_exclusions(synthetic_media: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    media = tmp_path / "media"
    shutil.copytree(synthetic_media / "test", media / "test")
    rows = [
        json.loads(line) for line in (synthetic_media / "annotations" / "test_videos.jsonl").read_text().splitlines()
    ]
    rows.append({"video": "test/videos/never-downloaded.mp4", "caption": "a file that is missing"})
    (media / "test" / "videos" / "broken.mp4").write_text("not a video")
    rows.append({"video": "test/videos/broken.mp4", "caption": "a file that is broken"})
    annotations = tmp_path / "test.jsonl"
    annotations.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "reports" / "synthetic"
    model = shutil.copytree(tiny_model_dir, tmp_path / "model")
    args = ["--benchmark", "jsonl", "--annotations", str(annotations), "--media", str(media)]
    args += ["--model", str(model), "--rerank-k", "4", "--dual-softmax", "--out", str(out)]
    result = run_eval(*args)
    assert result.returncode == 0, result.stderr
    assert "1 items missing and 1 unreadable were excluded" in result.stdout

    report = json.loads((out / "report.json").read_text())
    assert report["counts"]["items_evaluated"] == 12 and report["counts"]["texts_evaluated"] == 12
    assert set(report["metrics"]) == {"itc", "official", "calibrated", "model_choice", "dual_softmax"}
    assert report["counts"]["model_choice_rerank_k"] == 32, "no rerank.json in the folder: the engine's default"
    for metrics in report["metrics"].values():
        assert {"t2v_R@1", "t2v_R@5", "t2v_R@10", "t2v_R@mean", "t2v_MdR", "t2v_MnR", "v2t_R@1", "RSUM"} <= set(metrics)
    assert report["counts"]["rerank_k"] == 4 and report["counts"]["itm_pairs"] > 0
    assert report["throughput"]["items_per_s"] > 0 and report["throughput"]["itm_pairs_per_s"] > 0
    assert {Path(key).name for key in report["failures"]} == {"never-downloaded.mp4", "broken.mp4"}
    with (out / "per_query.csv").open() as handle:
        per_query = list(csv.DictReader(handle))
    assert len(per_query) == 12 and all(1 <= int(row["rank_itc"]) <= 12 for row in per_query)
    assert (out / "recall_at_k.png").stat().st_size > 1000 and (out / "rank_histogram.png").stat().st_size > 1000

    # The headline is what search ranks by: the model's choice (no rerank.json: the engine's default depth).
    assert report["headline_scorer"] == "model_choice"
    assert report["headline"]["R@1"] == report["metrics"]["model_choice"]["t2v_R@1"]
    assert report["scorer_labels"]["model_choice"] == "search's default (top 32 re-ranked, ITM re-rank, one scale)"
    assert "search ranks by: search's default (top 32 re-ranked" in result.stdout
    # The synthetic annotations carry attributes: composed queries, graded by attribute overlap.
    graded = report["graded"]
    assert graded["queries"] == 200 and graded["queries_with_a_full_match"] == 12  # one per video, the rest none
    assert set(graded["by_scorer"]) == {"itc", "official", "calibrated", "model_choice"}
    for figures in graded["by_scorer"].values():
        assert 0 <= figures["share@1"] <= 1 and 0 < figures["nDCG@10"] <= 1 and len(figures["share_curve"]) == 10
    assert report["headline"]["share@1"] == graded["by_scorer"]["model_choice"]["share@1"]
    assert "composed queries: 200 (12 fully held by an item)" in result.stdout
    with (out / "composed_queries.csv").open() as handle:
        composed = list(csv.DictReader(handle))
    assert len(composed) == 200
    assert all(0 <= int(row["first_overlap_itc"]) <= int(row["best_overlap"]) <= 5 for row in composed)
    assert (out / "graded_share_at_k.png").stat().st_size > 1000
    # ... and how often each scorer's first result has the query's colour, shape, motion...
    first = report["first_result_has_the_query's"]
    assert set(first) == set(report["metrics"]) - {"dual_softmax"}
    assert {"colour", "shape", "motion", "background"} <= set(first["itc"])
    r1 = report["metrics"]["itc"]["t2v_R@1"]
    assert all(r1 <= share <= 1 for share in first["itc"].values())  # a right first result has every attribute

    again = run_eval(*args[:-1], str(tmp_path / "reports" / "again"))
    assert again.returncode == 0, again.stderr
    second = json.loads((tmp_path / "reports" / "again" / "report.json").read_text())
    assert second["timings"]["items_embedded"] == 0  # every feature came from the cache
    assert second["metrics"]["itc"] == report["metrics"]["itc"]

    # Another copy of the data (another synthetic seed names its files the same way) is never read from the cache.
    elsewhere = shutil.copytree(media, tmp_path / "other-copy")
    moved = run_eval(*args[:5], str(elsewhere), *args[6:-1], str(tmp_path / "reports" / "moved"))
    assert moved.returncode == 0, moved.stderr
    assert json.loads((tmp_path / "reports" / "moved" / "report.json").read_text())["timings"]["items_embedded"] >= 12

    no_rerank = run_eval(*args[:-3], "--rerank-k", "0", "--out", str(tmp_path / "reports" / "k0"))
    assert no_rerank.returncode == 0, no_rerank.stderr
    plain = json.loads((tmp_path / "reports" / "k0" / "report.json").read_text())
    assert set(plain["metrics"]) == {"itc"} and "itm_pairs" not in plain["counts"], "0 means none"
    assert plain["headline_scorer"] == "itc" and set(plain["graded"]["by_scorer"]) == {"itc"}

    # The same folder with other weights (a model retrained in place) embeds everything afresh.
    weights = load_file(model / "model.safetensors")
    name = next(key for key in sorted(weights) if key.startswith("visual"))
    weights[name] = weights[name] + 0.01
    save_file(weights, model / "model.safetensors")
    third = run_eval(*args[:-1], str(tmp_path / "reports" / "third"))
    assert third.returncode == 0, third.stderr
    third_report = json.loads((tmp_path / "reports" / "third" / "report.json").read_text())
    assert third_report["timings"]["items_embedded"] >= 12


def test_eval_names_a_wrong_file(tmp_path: Path) -> None:
    bad = tmp_path / "val_1.json"
    bad.write_text("[1, 2]")
    result = run_eval("--benchmark", "activitynet", "--annotations", str(bad), "--media", str(tmp_path))
    assert result.returncode == 2 and "val_1.json: not an annotation file of activitynet" in result.stderr
