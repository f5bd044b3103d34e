"""The label stage: rendered training frames carry their attributes as labels, and the visual tower (only it) learns
to name them."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from indexer.cli import cli
from indexer.synthetic.attributes import COLOURS
from indexer.synthetic.labelled_frames import VALUES, label_counts, render_labelled_frames
from indexer.synthetic.vocab import write_synthetic_vocab
from mplug2 import create_model
from mplug2.train.config import LabelStageConfig
from mplug2.train.label_stage import UNLABELLED, LabelledFrames, train_on_labels, visual_parameters


def test_rendered_frames_show_the_attributes_their_labels_name() -> None:
    batch = render_labelled_frames(24, np.random.default_rng(0))
    assert batch.frames.shape == (24, 240, 320, 3) and batch.frames.dtype == np.uint8
    assert set(batch.labels) == set(VALUES) == set(label_counts())
    for index, frame in enumerate(batch.frames):
        colour = VALUES["colour"][batch.labels["colour"][index]]
        filled = np.all(frame == np.array(COLOURS[colour], np.uint8), axis=-1).sum()
        assert filled > 500, f"frame {index}: a {colour} shape is drawn in its exact colour"
    sizes = batch.labels["size"]
    assert (sizes == UNLABELLED).any() and (sizes != UNLABELLED).any(), "growing shapes have no size; others do"
    again = render_labelled_frames(24, np.random.default_rng(0))
    assert np.array_equal(again.frames, batch.frames), "a seed gives the same frames"


def _two_colours(count: int, rng: np.random.Generator) -> LabelledFrames:
    """Plain red or blue frames: a label any tower can learn in a few steps."""
    which = rng.integers(0, 2, count)
    frames = np.zeros((count, 32, 32, 3), np.uint8)
    frames[which == 0] = COLOURS["red"]
    frames[which == 1] = COLOURS["blue"]
    return LabelledFrames(frames, {"colour": which})


def test_the_visual_tower_alone_learns_the_labels() -> None:
    torch.manual_seed(0)
    model = create_model("mplug2-tiny")
    trained = {id(p) for p in visual_parameters(model)}
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    config = LabelStageConfig(steps=40, batch_size=8, lr=1e-3, warmup_steps=5, log_every=10)
    result = train_on_labels(model, _two_colours, {"colour": 2}, config)
    assert result.steps == 40 and result.accuracy["colour"] == 1.0
    for name, parameter in model.named_parameters():
        changed = not torch.equal(before[name], parameter)
        if id(parameter) not in trained:
            assert not changed, f"{name} is not the visual tower's and must stay as it was"
    assert not torch.equal(before["vision_proj.weight"], model.vision_proj.weight)


class _Interrupted(Exception):
    pass


def _interrupted_after(calls: int):
    """`_two_colours`, but the batch after `calls` batches raises, as a kill mid-step would stop the run."""
    made = 0

    def source(count: int, rng: np.random.Generator) -> LabelledFrames:
        nonlocal made
        made += 1
        if made > calls:
            raise _Interrupted
        return _two_colours(count, rng)

    return source


def test_a_stopped_label_stage_resumes_from_its_checkpoint_as_if_never_stopped(tmp_path) -> None:
    config = LabelStageConfig(steps=30, batch_size=4, lr=1e-3, warmup_steps=5, log_every=10, checkpoint_every=10)
    torch.manual_seed(0)
    straight = create_model("mplug2-tiny")
    start = {name: value.clone() for name, value in straight.state_dict().items()}
    train_on_labels(straight, _two_colours, {"colour": 2}, config)

    checkpoint = tmp_path / "checkpoints" / "last.pt"
    stopped = create_model("mplug2-tiny")
    stopped.load_state_dict(start)
    with pytest.raises(_Interrupted):
        train_on_labels(stopped, _interrupted_after(25), {"colour": 2}, config, checkpoint=checkpoint)
    resumed = create_model("mplug2-tiny")
    resumed.load_state_dict(start)
    result = train_on_labels(resumed, _interrupted_after(10), {"colour": 2}, config, checkpoint=checkpoint)
    assert result.steps == 30, "steps 21-30 alone: the checkpoint of step 20 was the start"
    for name, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), f"{name} differs from the run never stopped"

    longer = LabelStageConfig(**{**asdict(config), "steps": 40})
    assert train_on_labels(resumed, _two_colours, {"colour": 2}, longer, checkpoint=checkpoint).steps == 40
    other = LabelStageConfig(**{**asdict(config), "lr": 5e-4})
    with pytest.raises(ValueError, match="other settings \\(lr\\)"):
        train_on_labels(resumed, _two_colours, {"colour": 2}, other, checkpoint=checkpoint)


def test_the_command_writes_a_model_folder_with_what_it_did(tmp_path) -> None:
    vocab = write_synthetic_vocab(tmp_path / "vocab.txt")
    out = tmp_path / "stage"
    args = ["pretrain-synthetic", "--model", "mplug2-tiny", "--vocab", str(vocab), "--out", str(out)]
    result = CliRunner().invoke(cli, [*args, "--steps", "3", "--batch-size", "4", "--image-size", "64"])
    assert result.exit_code == 0, result.output
    assert "trained 3 steps" in result.output
    provenance = json.loads((out / "model" / "config.json").read_text())["provenance"]
    assert provenance["steps"] == 3 and provenance["label_stage"]["batch_size"] == 4
    assert set(provenance["accuracy"]) == set(VALUES)
    model = create_model(out / "model")
    assert model.config.image_size == 64
    elsewhere = CliRunner().invoke(cli, [*args, "--steps", "3", "--batch-size", "4", "--image-size", "96"])
    assert elsewhere.exit_code == 1 and "last.pt holds another model's weights" in elsewhere.output


def test_the_command_names_only_the_attributes_asked_for(tmp_path) -> None:
    assert set(LabelStageConfig.attributes) == set(VALUES), "by default every attribute the renderer labels"
    vocab = write_synthetic_vocab(tmp_path / "vocab.txt")
    out = tmp_path / "stage"
    args = ["pretrain-synthetic", "--model", "mplug2-tiny", "--vocab", str(vocab), "--out", str(out), "--steps", "2"]
    result = CliRunner().invoke(cli, [*args, "--batch-size", "4", "--attributes", "shape"])
    assert result.exit_code == 0, result.output
    provenance = json.loads((out / "model" / "config.json").read_text())["provenance"]
    assert set(provenance["accuracy"]) == {"shape"} and provenance["label_stage"]["attributes"] == ["shape"]
    refused = CliRunner().invoke(cli, [*args, "--attributes", "hue"])
    assert refused.exit_code == 2 and "hue" in refused.output


def test_a_config_name_without_a_vocab_is_refused(tmp_path) -> None:
    result = CliRunner().invoke(cli, ["pretrain-synthetic", "--model", "mplug2-tiny", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "needs --vocab" in result.output


def test_an_input_size_the_patches_do_not_divide_is_refused(tmp_path) -> None:
    vocab = write_synthetic_vocab(tmp_path / "vocab.txt")
    args = ["pretrain-synthetic", "--model", "mplug2-tiny", "--vocab", str(vocab), "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(cli, [*args, "--image-size", "60"])
    assert result.exit_code == 2 and "patch size 8" in result.output


def test_a_conv_branch_joins_the_model_before_the_labels_and_learns(tmp_path) -> None:
    vocab = write_synthetic_vocab(tmp_path / "vocab.txt")
    out = tmp_path / "stage"
    args = ["pretrain-synthetic", "--model", "mplug2-tiny", "--vocab", str(vocab), "--out", str(out), "--conv-branch"]
    result = CliRunner().invoke(cli, [*args, "--steps", "3", "--batch-size", "4"])
    assert result.exit_code == 0, result.output
    model = create_model(out / "model")
    assert model.config.vision.stem == "patch+conv"
    assert model.visual_encoder.visual.stem.proj.weight.abs().sum() > 0, "the branch left its silent start"
    widened_twice = [*args[:-3], "--out", str(tmp_path / "again"), "--conv-branch", "--model", str(out / "model")]
    again = CliRunner().invoke(cli, [*widened_twice, "--steps", "1", "--batch-size", "4"])
    assert again.exit_code == 2 and "joins 'patch' only" in again.output
