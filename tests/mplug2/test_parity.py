"""Parity: the official modules' outputs (random weights) reproduced through the official-checkpoint loader.

The fixture folder comes from MPLUG2_PARITY_FIXTURE (default ../shared/reference/mplug2-parity-a); everything is
read from its meta.json, so any fixture in the `mplug2-parity/1` format must pass. The variants official
checkpoints come in (pre-training key style, momentum copies, DeepSpeed `module` wrapper, queues, pickled extras)
are derived here from the fixture's checkpoint: the expected outputs do not change.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from mplug2.checkpoint import CheckpointError, load_official_state_dict, read_checkpoint
from mplug2.config import MPLUG2Config
from mplug2.model import MPLUG2Retrieval
from tests.mplug2.conftest import parity_fixture_dir


@pytest.fixture(scope="module")
def fixture() -> dict:
    folder = parity_fixture_dir()
    if not (folder / "meta.json").is_file():
        pytest.skip(f"no parity fixture at {folder} (set MPLUG2_PARITY_FIXTURE)")
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["format"] == "mplug2-parity/1"
    return {
        "folder": folder,
        "meta": meta,
        "reference": torch.load(folder / meta["reference"], map_location="cpu", weights_only=True),
    }


def build_model(meta: dict) -> MPLUG2Retrieval:
    bert = dict(meta["bert"], fusion_layers_built=meta.get("fusion_layers_built", meta["bert"]["text_encoder_layers"]))
    config = MPLUG2Config.from_official(
        "parity", bert, meta["vision"], meta["num_latents"], meta["embed_dim"], meta["vision"].get("num_frames")
    )
    return MPLUG2Retrieval(config).eval()


def outputs(model: MPLUG2Retrieval, reference: dict) -> dict[str, torch.Tensor]:
    """Every tensor the fixture defines, computed by the model from the fixture's inputs."""
    video = reference["video"].permute(0, 2, 1, 3, 4)  # fixture [B, 3, T, H, W] → ours [B, T, 3, H, W]
    image = reference["image"].permute(0, 2, 1, 3, 4)
    with torch.no_grad():
        result = {"video_vit_tokens": model.visual_encoder(video), "image_vit_tokens": model.visual_encoder(image)}
        text = model.encode_text(reference["input_ids"], reference["attention_mask"])
        result.update(text_embeds=text.tokens, itc_text_feat=text.feat)
        for kind, pixels in (("video", video), ("image", image)):
            visual = model.encode_video(pixels)
            result[f"{kind}_embeds"], result[f"itc_{kind}_feat"] = visual.tokens, visual.feat
            result[f"itc_sim_text_{kind}"] = text.feat @ visual.feat.T
            n, b = len(text.feat), len(visual.feat)
            logits = model.itm_logits(
                text.tokens.repeat_interleave(b, 0), text.mask.repeat_interleave(b, 0), visual.tokens.repeat(n, 1, 1)
            )
            result[f"itm_logits_text_{kind}"] = logits.view(n, b, 2)
    return result


def assert_parity(model: MPLUG2Retrieval, fixture: dict) -> None:
    reference, tolerance = fixture["reference"], fixture["meta"]["tolerance"]
    computed = outputs(model, reference)
    expected = [k for k in reference if k not in ("video", "image", "input_ids", "attention_mask")]
    assert sorted(expected) == sorted(computed), "every reference tensor is checked"
    for key in expected:
        torch.testing.assert_close(
            computed[key],
            reference[key],
            atol=tolerance["atol"],
            rtol=tolerance["rtol"],
            msg=lambda m, key=key: f"{key}: {m}",
        )


def official_state(fixture: dict) -> dict[str, torch.Tensor]:
    return read_checkpoint(fixture["folder"] / fixture["meta"]["checkpoint"])


def test_fixture_parity(fixture: dict) -> None:
    model = build_model(fixture["meta"])
    report = load_official_state_dict(model, official_state(fixture))
    assert report.missing == [] and report.unexpected == []
    assert_parity(model, fixture)


def to_pretrain_style(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Pre-training checkpoints keep a `bert.` level in the text and fusion towers (added once: a state already in
    that style comes back unchanged)."""
    return {re.sub(r"^(text_encoder|fusion_encoder)\.(?!bert\.)", r"\1.bert.", key): t for key, t in state.items()}


def test_pretrain_style_is_added_once() -> None:
    """A fixture whose checkpoint is already in pre-training style must reach the loader unchanged."""
    one = torch.zeros(1)
    state = {"text_encoder.embeddings.w": one, "fusion_encoder.bert.layer.0.w": one, "visual_encoder.w": one}
    once = to_pretrain_style(state)
    assert list(once) == ["text_encoder.bert.embeddings.w", "fusion_encoder.bert.layer.0.w", "visual_encoder.w"]
    assert to_pretrain_style(once) == once


def with_training_extras(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Momentum copies of every tower and head, and the ITC queues, as V1 training saves them."""
    extras = dict(state)
    for key, tensor in state.items():
        tower, _, rest = key.partition(".")
        if tower in ("visual_encoder", "text_encoder", "fusion_encoder", "vision_proj", "text_proj", "visn_emb_norm"):
            extras[f"{tower}_m.{rest}"] = torch.randn_like(tensor) if tensor.is_floating_point() else tensor
    extras.update(
        image_queue=torch.randn(32, 64),
        text_queue=torch.randn(32, 64),
        idx_queue=torch.zeros(1, 64),
        queue_ptr=torch.zeros(1, dtype=torch.long),
    )
    return extras


@pytest.mark.parametrize("variant", ["pretrain-keys", "momentum-and-queues", "module-wrapper"])
def test_variant_parity(fixture: dict, variant: str, tmp_path: Path) -> None:
    state = official_state(fixture)
    if variant == "pretrain-keys":
        assert any(k.startswith("text_encoder.") for k in state)
        state, wrapper = to_pretrain_style(state), "model"
    elif variant == "momentum-and-queues":
        state, wrapper = with_training_extras(state), "model"
    else:
        wrapper = "module"
    path = tmp_path / "variant.pth"
    torch.save({wrapper: state}, path)
    model = build_model(fixture["meta"])
    report = load_official_state_dict(model, read_checkpoint(path))
    assert report.missing == [] and report.unexpected == []
    if variant == "momentum-and-queues":
        assert report.ignored["momentum copies"] > 0 and report.ignored["ITC queues"] == 4
    assert_parity(model, fixture)


def test_pickled_extras_need_explicit_trust(fixture: dict, tmp_path: Path) -> None:
    from types import SimpleNamespace

    path = tmp_path / "with-config.pth"
    torch.save({"model": official_state(fixture), "config": SimpleNamespace(lr=1e-4), "epoch": 3}, path)
    with pytest.raises(CheckpointError, match="trust-pickle"):
        read_checkpoint(path)
    with pytest.warns(UserWarning, match="weights_only=False"):
        state = read_checkpoint(path, trust_pickle=True)
    model = build_model(fixture["meta"])
    load_official_state_dict(model, state)
    assert_parity(model, fixture)
