"""scripts/heldout_eval.py: a fresh-seed summary is reused only for the exact model files, seed and depth it was
measured with (each costs about 20 minutes), and its checks are the issue's bars, computed from the reports."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import heldout_eval
from heldout_eval import fresh_seed_summary, model_files_digest, summarise


def _report(itc: float, model_choice: float) -> dict:
    metrics = {"itc": {"t2v_R@1": itc}, "model_choice": {"t2v_R@1": model_choice}}
    return {"metrics": metrics, "counts": {"items_evaluated": 10, "model_choice_rerank_k": 0}}


def test_the_checks_are_the_issues_bars() -> None:
    reports = {
        "videos": _report(0.40, 0.40),
        "images": _report(0.30, 0.25),
        "twins": _report(0.33, 0.33),
        "directions": _report(0.50, 0.50),
    }
    summary = summarise(reports)
    assert summary["rows"]["model_choice"]["twin_ratio"] == pytest.approx(0.66)
    # Re-ranking lowered image R@1 (0.30 → 0.25): it hurt, whatever the videos say.
    assert summary["checks"] == {
        "reranking_never_hurts": False,
        "t2v_R@1_at_least_0.35": True,
        "twin_ratio_at_least_0.65": True,
    }


def test_a_summary_is_reused_only_for_the_same_model_files(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_command(*args: str) -> None:
        raise AssertionError(f"a recorded summary should have been reused, not: mplug2-search {' '.join(args)}")

    monkeypatch.setattr(heldout_eval, "mplug2_search", no_command)
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    digest = model_files_digest(model)
    recorded = {"seed": 11, "model_files_sha256": digest, "rerank_k": 64, "rows": {}}
    (tmp_path / f"seed-11-{digest}-top64-summary.json").write_text(json.dumps(recorded))
    assert fresh_seed_summary(11, model, tmp_path, 64) == recorded
    with pytest.raises(AssertionError, match="make-synthetic"):
        fresh_seed_summary(11, model, tmp_path, 32)  # another depth is another measurement

    (model / "rerank.json").write_text(json.dumps({"rerank_k": 16, "scorer": "calibrated"}))
    assert model_files_digest(model) != recorded["model_files_sha256"]  # a new re-rank choice is a new measurement
