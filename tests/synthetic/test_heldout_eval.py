"""scripts/heldout_eval.py: a fresh-seed summary is reused only for the exact model files, seed and depth it was
measured with (each costs about 5 minutes), and its checks are the issue's bars, computed from the reports."""

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


def test_the_summary_carries_the_graded_figures_and_the_first_results_attributes() -> None:
    reports = {name: _report(0.5, 0.5) for name in ("videos", "images", "twins", "directions")}
    figures = {"nDCG@10": 0.8, "share@1": 0.85, "share@5": 0.75, "full_match_first": 0.6, "share_curve": [0.85]}
    reports["videos"]["graded"] = {"by_scorer": {"itc": figures, "model_choice": {**figures, "share@1": 0.9}}}
    reports["videos"]["first_result_has_the_query's"] = {"itc": {"shape": 0.6}, "model_choice": {"shape": 0.7}}
    rows = summarise(reports)["rows"]
    assert rows["model_choice"]["first_video_has_the_query's"] == {"shape": 0.7}
    assert rows["itc"]["composed_videos"] == {"nDCG@10": 0.8, "share@1": 0.85, "share@5": 0.75, "full_match_first": 0.6}
    assert rows["model_choice"]["composed_videos"]["share@1"] == 0.9
    assert rows["itc"]["composed_images"] is None  # a report without attributes grades nothing


def test_a_summary_is_reused_only_for_the_same_model_files(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_command(*args: str) -> None:
        raise AssertionError(f"a recorded summary should have been reused, not: mplug2-search {' '.join(args)}")

    monkeypatch.setattr(heldout_eval, "mplug2_search", no_command)
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    digest = model_files_digest(model)
    before_graded = {"seed": 11, "model_files_sha256": digest, "rerank_k": 64, "rows": {}}
    (tmp_path / f"seed-11-{digest}-top64-summary.json").write_text(json.dumps(before_graded))
    with pytest.raises(AssertionError, match="make-synthetic"):
        fresh_seed_summary(11, model, tmp_path, 64)  # a summary without the graded figures is measured again
    recorded = {**before_graded, "format": heldout_eval.SUMMARY_FORMAT}
    (tmp_path / f"seed-11-{digest}-top64-summary.json").write_text(json.dumps(recorded))
    assert fresh_seed_summary(11, model, tmp_path, 64) == recorded
    with pytest.raises(AssertionError, match="make-synthetic"):
        fresh_seed_summary(11, model, tmp_path, 32)  # another depth is another measurement

    (model / "rerank.json").write_text(json.dumps({"rerank_k": 16, "scorer": "calibrated"}))
    assert model_files_digest(model) != recorded["model_files_sha256"]  # a new re-rank choice is a new measurement


def test_the_model_card_shows_the_first_results_attributes_and_the_composed_queries_figures() -> None:
    from model_card import fresh_seeds_section

    row = {
        "t2v_R@1": 0.6,
        "t2i_R@1": 0.4,
        "twin_set_R@1": 0.45,
        "same_queries_without_twins_R@1": 0.6,
        "twin_ratio": 0.75,
        "first_video_has_the_query's": {"colour": 0.99, "shape": 0.7, "motion": 0.93, "size": 0.9},
        "composed_videos": {"share@1": 0.912, "share@5": 0.801, "nDCG@10": 0.85},
        "composed_images": {"share@1": 0.7},
    }
    older = {key: value for key, value in row.items() if not key.startswith(("composed", "first"))}
    items = {"videos": 400, "images": 100}
    section = fresh_seeds_section(
        {
            "17": {"rerank_k": 64, "items": items, "rows": {"itc": row}},
            "11": {"rerank_k": 64, "items": items, "rows": {"itc": older}},
        }
    )
    assert (
        "| 17 | ITC (dual encoder) | 0.600 | 0.400 | 0.450 | 0.600 | 0.75x | 0.99 | 0.70 | 0.93 | 0.912 | 0.801 | "
        "0.850 | 0.700 |" in section
    )
    assert "| 11 | ITC (dual encoder) | 0.600 | 0.400 | 0.450 | 0.600 | 0.75x | - | - | - | - | - | - | - |" in section


def test_the_recipe_takes_a_sharpen_stage_and_the_card_names_where_the_weights_started(tmp_path: Path) -> None:
    import argparse

    from bundled_model import SHIPPED_SHARPEN, write_attribute_words
    from model_card import first_stages_words, partial_words, sharpen_words, visual_tower_words
    from recipe_specs import SharpenStage, sharpen, sharpen_text

    assert sharpen("96:800:3e-4,96:900:2e-4") == (SharpenStage(96, 800, 3e-4), SharpenStage(96, 900, 2e-4))
    assert sharpen("96:800:2e-4:shape+size") == (SharpenStage(96, 800, 2e-4, ("shape", "size")),)
    assert sharpen(",".join(map(sharpen_text, SHIPPED_SHARPEN))) == SHIPPED_SHARPEN and sharpen("none") == ()
    for bad in ("96:800", "96:x:1e-4", "0:800:1e-4", "96:800:0", "96:800:2e-4:shape:size", "96:800:2e-4:hue"):
        with pytest.raises(argparse.ArgumentTypeError):
            sharpen(bad)
    every_group, shape_only = write_attribute_words(tmp_path), write_attribute_words(tmp_path, ("shape",))
    assert set(json.loads(every_group.read_text())) == {"shape", "motion", "size", "position"}
    assert list(json.loads(shape_only.read_text())) == ["shape"] and shape_only != every_group
    args = argparse.Namespace(start_from=None, start_from_note=None, label_steps=0, label_size=96, conv_branch=False)
    args.visual_tower, args.meet_steps, args.meet_lr, args.polish_steps, args.polish_lr = None, 800, 1e-3, 0, 3e-4
    args.label_attributes = "shape+colour+background+size"
    args.lr, args.batch_size, args.hard_batches, args.minutes, args.itm_minutes = 1e-3, 32, 0.5, 52.0, 8.0
    first = SHIPPED_SHARPEN[0]
    stage_1 = f"sharpen stage 1 ({first.steps} steps at {first.size} px input from the 64 px model, its position grid"
    assert stage_1 in sharpen_words(SHIPPED_SHARPEN, 64)
    assert f"from the {first.size} px model, lr" in sharpen_words(SHIPPED_SHARPEN, first.size)  # nothing resized
    stages = (SharpenStage(96, 800, 3e-4), SharpenStage(96, 900, 2e-4, ("shape",)))
    assert (
        "; sharpen stage 2 (900 steps at 96 px input from sharpen stage 1, lr 0.0002, seed 1, caption negatives "
        "swapping only shape," in sharpen_words(stages, 64)
    )
    assert first_stages_words(args).startswith("joint ITC + ITM from random weights")
    args.label_steps = 1000
    assert first_stages_words(args).startswith("a label stage (1000 steps at 96 px: the visual tower names shape")
    assert "; joint ITC + ITM from the label stage (lr 0.001" in first_stages_words(args)
    args.start_from, args.start_from_note = Path("old-model"), "the previous release"
    args.conv_branch = True
    assert first_stages_words(args) == (
        "started from the previous release; a label stage (1000 steps at 96 px: the visual tower, given convolutions "
        "beside its patch kernel, names shape, colour, background and size of freshly rendered training frames)"
    )
    assert visual_tower_words(args) == ""
    args.conv_branch, args.visual_tower, args.label_attributes = False, "mplug2-small-conv", "shape"
    assert first_stages_words(args) == "started from the previous release", "the label stage is the new tower's"
    assert visual_tower_words(args) == (
        "; a label stage (1000 steps at 96 px: a fresh mplug2-small-conv visual tower names shape of freshly rendered "
        "training frames); that tower in place of the model's, then 800 steps of the motion recipe at lr 0.001 with "
        "the text tower (and the universal layers) held still, so the new tower learns to meet text embeddings that "
        "already tell the attributes apart"
    )
    args.polish_steps, args.relabel_steps, args.relabel_attributes = 600, 0, "shape+colour+background+size"
    assert visual_tower_words(args).endswith(
        "already tell the attributes apart, then 600 steps of it with every weight at lr 0.0003"
    )
    args.relabel_steps = 800
    assert visual_tower_words(args).endswith(
        "already tell the attributes apart, then 600 steps of it with every weight at lr 0.0003; a label stage (800 "
        "steps at 96 px: its own tower names shape, colour, background and size of freshly rendered training frames); "
        "then 600 more steps of the motion recipe with every weight at lr 0.0003"
    )
    args.label_steps, args.visual_tower = 0, None
    assert first_stages_words(args) == "started from the previous release"
    assert sharpen_words((), 64) == ""
    args.partial_captions, args.partial_attributes = 0.0, "shape"
    assert partial_words(args) == ""
    args.partial_captions, args.partial_attributes = 0.3, "shape+size"
    partial = partial_words(args)
    assert partial == ", 30% of the captions cut down to their shape and size phrases"
    assert f"seed 0{partial}, otherwise" in sharpen_words(SHIPPED_SHARPEN[:1], 96, partial)


def test_the_card_names_a_stem_that_is_not_the_official_one() -> None:
    from model_card import architecture_words

    from mplug2 import create_model, get_config
    from mplug2.factory import with_conv_branch

    assert architecture_words(get_config("mplug2-small")) == "no additions: every official module, nothing else"
    assert "a conv stem in place of the ViT's patch kernel" in architecture_words(get_config("mplug2-small-conv"))
    widened = with_conv_branch(create_model("mplug2-small")).config
    assert "convolutions beside the ViT's patch kernel" in architecture_words(widened)


def test_a_rerun_of_the_recipe_keeps_the_measurements_of_the_same_model_folder(tmp_path: Path) -> None:
    import argparse

    from bundled_model import earlier_report

    args = argparse.Namespace(rerank_k=16, fresh_seeds=(11, 13))
    off = {"rerank_k": 0, "scorer": "calibrated", "chosen_by": "validation on a set"}
    assert earlier_report(tmp_path, args, off) is None, "nothing measured yet"
    report = {"rerank_k": 16, "fresh_seeds": {"11": {}, "13": {}}, "groups": {}, "model_choice": off}
    (tmp_path / "metrics.json").write_text(json.dumps(report))
    assert earlier_report(tmp_path, args, off) == report
    elsewhere = off | {"chosen_by": "validation on a larger set"}
    assert earlier_report(tmp_path, args, elsewhere) == report | {"model_choice": elsewhere}, "the same ranking"
    assert earlier_report(tmp_path, args, off | {"rerank_k": 8}) is None, "the engine now re-ranks"
    assert earlier_report(tmp_path, argparse.Namespace(rerank_k=32, fresh_seeds=(11, 13)), off) is None
    assert earlier_report(tmp_path, argparse.Namespace(rerank_k=16, fresh_seeds=(7,)), off) is None
