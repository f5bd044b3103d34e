"""The official-checkpoint loader's refusals and repairs: missing heads, wrong sizes, position-embedding resize."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from mplug2 import get_config
from mplug2.checkpoint import CheckpointError, load_official_state_dict, read_checkpoint
from mplug2.config import VisionConfig
from mplug2.init import init_weights
from mplug2.model import MPLUG2Retrieval


def test_missing_retrieval_heads_are_an_actionable_error(tiny_model: MPLUG2Retrieval) -> None:
    state = {k: v for k, v in tiny_model.state_dict().items() if not k.startswith(("vision_proj", "text_proj", "itm"))}
    fresh = MPLUG2Retrieval(tiny_model.config)
    with pytest.raises(CheckpointError, match=r"no retrieval heads.*random.*allow_missing_heads"):
        load_official_state_dict(fresh, state)
    with pytest.warns(UserWarning, match="random weights"):
        report = load_official_state_dict(fresh, state, allow_missing_heads=True)
    assert {k.split(".")[0] for k in report.missing} == {"vision_proj", "text_proj", "itm_head"}


def test_a_checkpoint_of_another_size_is_refused(tiny_model: MPLUG2Retrieval) -> None:
    bigger = MPLUG2Retrieval(replace(tiny_model.config, embed_dim=48))
    with pytest.raises(CheckpointError, match="does not fit this model config"):
        load_official_state_dict(bigger, tiny_model.state_dict())


def test_unknown_keys_are_reported_not_loaded(tiny_model: MPLUG2Retrieval) -> None:
    state = dict(tiny_model.state_dict(), **{"prompt_learner.ctx": torch.zeros(3)})
    report = load_official_state_dict(MPLUG2Retrieval(tiny_model.config), state)
    assert report.unexpected == ["prompt_learner.ctx"]


def test_position_embeddings_are_resized_to_another_image_size(tiny_model: MPLUG2Retrieval) -> None:
    config = replace(tiny_model.config, vision=replace(tiny_model.config.vision, image_size=48))
    larger = MPLUG2Retrieval(config)
    report = load_official_state_dict(larger, tiny_model.state_dict())
    assert report.resized and larger.visual_encoder.visual.positional_embedding.shape == (1 + 6 * 6, 64)
    torch.testing.assert_close(
        larger.visual_encoder.visual.positional_embedding[0], tiny_model.visual_encoder.visual.positional_embedding[0]
    )
    with torch.no_grad():
        assert larger.encode_video(torch.randn(1, 2, 3, 48, 48)).tokens.shape == (1, 1 + 2 * 36, 64)


def test_unreadable_inputs(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        read_checkpoint(tmp_path / "absent.pth")
    torch.save({"epoch": 3}, tmp_path / "empty.pth")
    with pytest.raises(CheckpointError, match="no state dict"):
        read_checkpoint(tmp_path / "empty.pth")


def test_init_weights_gives_identity_adapters_and_official_temperature() -> None:
    model = init_weights(MPLUG2Retrieval(replace(get_config("mplug2-tiny"), vision=VisionConfig(64, 1, 2, 8, 32))))
    up = model.visual_encoder.visual.transformer.resblocks[0].lmhra1.up_proj
    assert up.weight.abs().sum() == 0 and model.temp.item() == pytest.approx(0.07)
