"""The model's public face on small configs: shapes, normalised ITC vectors, optional fusion, size variants."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from mplug2 import create_model, get_config
from mplug2.checkpoint import load_official_state_dict
from mplug2.config import TextConfig, VisionConfig
from mplug2.factory import at_image_size
from mplug2.init import init_weights
from mplug2.model import MPLUG2Retrieval


def test_encoders_return_tokens_and_unit_itc_vectors(tiny_model: MPLUG2Retrieval) -> None:
    config = tiny_model.config
    size, grid = config.image_size, config.vision.grid
    with torch.no_grad():
        video = tiny_model.encode_video(torch.randn(2, 5, 3, size, size))
        image = tiny_model.encode_image(torch.randn(3, 3, size, size))
        text = tiny_model.encode_text(torch.randint(5, 100, (4, 7)), torch.ones(4, 7, dtype=torch.long))
    hidden = config.text.hidden_size
    assert video.tokens.shape == (2, 1 + 5 * grid * grid, hidden)
    assert image.tokens.shape == (3, 1 + grid * grid, hidden)
    assert text.tokens.shape == (4, 7, hidden)
    for feat in (video.feat, image.feat, text.feat):
        torch.testing.assert_close(feat.norm(dim=-1), torch.ones(len(feat)))
    with torch.no_grad():
        logits = tiny_model.itm_logits(text.tokens[:2], text.mask[:2], video.tokens)
    assert logits.shape == (2, 2)


def test_an_image_is_a_one_frame_video(tiny_model: MPLUG2Retrieval) -> None:
    pixels = torch.randn(2, 3, tiny_model.config.image_size, tiny_model.config.image_size)
    with torch.no_grad():
        torch.testing.assert_close(tiny_model.encode_image(pixels).feat, tiny_model.encode_video(pixels[:, None]).feat)


def test_temporal_adapters_make_frame_order_matter(tiny_model: MPLUG2Retrieval) -> None:
    for name, parameter in tiny_model.named_parameters():
        if "lmhra" in name and "ln" not in name:
            torch.nn.init.normal_(parameter, std=0.5)  # trained adapters are not the identity
    video = torch.randn(1, 4, 3, tiny_model.config.image_size, tiny_model.config.image_size)
    with torch.no_grad():
        forward, backward = tiny_model.encode_video(video).feat, tiny_model.encode_video(video.flip(1)).feat
    assert not torch.allclose(forward, backward, atol=1e-4), "a reversed clip (left vs right) must look different"


def test_padding_does_not_change_the_text_vector(tiny_model: MPLUG2Retrieval) -> None:
    ids = torch.tensor([[2, 10, 11, 12, 3]])
    padded = torch.tensor([[2, 10, 11, 12, 3, 0, 0, 0]])
    with torch.no_grad():
        short = tiny_model.encode_text(ids, torch.ones_like(ids)).feat
        long = tiny_model.encode_text(padded, (padded != 0).long()).feat
    torch.testing.assert_close(short, long, atol=1e-5, rtol=1e-5)


def test_the_dual_encoder_needs_no_fusion_tower(tiny_model: MPLUG2Retrieval) -> None:
    light = create_model("mplug2-tiny", with_fusion=False)
    assert not any(k.startswith(("fusion_encoder", "itm_head")) for k in light.state_dict())
    report = load_official_state_dict(light, tiny_model.state_dict())
    assert report.ignored == {
        "fusion tower (model built without it)": len(
            [k for k in tiny_model.state_dict() if k.startswith(("fusion_encoder", "itm_head"))]
        )
    }
    video = torch.randn(1, 2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(light.encode_video(video).feat, tiny_model.encode_video(video).feat)
        with pytest.raises(RuntimeError, match="without the fusion encoder"):
            light.itm_logits(torch.zeros(1, 2, 64), torch.ones(1, 2), torch.zeros(1, 3, 64))


def variant_config():
    """Vision width 96 (3 heads of 32) differs from text hidden 80 (5 heads of 16): visn_fc exists; patch 4,
    3 universal layers, a fusion encoder built with more layers than run."""
    base = get_config("mplug2-tiny")
    return replace(
        base,
        vision=VisionConfig(width=96, layers=2, heads=3, patch_size=4, image_size=16),
        text=TextConfig(
            vocab_size=64,
            hidden_size=80,
            num_attention_heads=5,
            intermediate_size=160,
            text_encoder_layers=4,
            num_uni_layer=3,
            fusion_layers=2,
            fusion_layers_built=5,
            max_position_embeddings=32,
        ),
    )


def test_variant_sizes_load_from_official_names_and_compute_visn_fc_as_specified() -> None:
    torch.manual_seed(1)
    source = init_weights(MPLUG2Retrieval(variant_config())).eval()
    assert hasattr(source, "visn_fc") and hasattr(source, "visn_layer_norm")
    state = {re.sub(r"^(text_encoder|fusion_encoder)\.", r"\1.bert.", k): v for k, v in source.state_dict().items()}
    state["fusion_encoder.bert.encoder.layer.0.attention.self.query.weight"] = torch.zeros(80, 80)  # a layer not run
    target = MPLUG2Retrieval(variant_config()).eval()
    report = load_official_state_dict(target, state)
    assert report.missing == [] and report.unexpected == []
    assert report.ignored == {"fusion layers that never run": 1}
    video = torch.randn(2, 3, 3, 16, 16)
    with torch.no_grad():
        out = target.encode_video(video)
        vit = target.visual_encoder(video)
        projected = target.visn_layer_norm(target.visn_fc(vit))
        expected = target.visn_emb_norm(projected + target.text_encoder.forward_vision(projected))
    torch.testing.assert_close(out.tokens, expected)
    torch.testing.assert_close(out.feat, F.normalize(target.vision_proj(expected[:, 0]), dim=-1))
    torch.testing.assert_close(out.feat, source.encode_video(video).feat.detach())


def test_a_model_moves_to_a_higher_input_size_with_its_position_grid_resized(tiny_model: MPLUG2Retrieval) -> None:
    size = tiny_model.config.image_size
    larger = at_image_size(tiny_model, 2 * size)
    grid = larger.config.vision.grid
    assert larger.config.image_size == 2 * size and grid == 2 * tiny_model.config.vision.grid
    before = tiny_model.visual_encoder.visual.positional_embedding
    after = larger.visual_encoder.visual.positional_embedding
    assert after.shape == (1 + grid * grid, before.shape[1])
    torch.testing.assert_close(after[0], before[0], msg="the CLS row is kept")
    ids = torch.tensor([[2, 10, 11, 3]])
    with torch.no_grad():
        torch.testing.assert_close(
            larger.encode_text(ids, torch.ones_like(ids)).feat, tiny_model.encode_text(ids, torch.ones_like(ids)).feat
        )
        video = larger.encode_video(torch.randn(1, 4, 3, 2 * size, 2 * size))
    assert video.tokens.shape == (1, 1 + 4 * grid * grid, larger.config.text.hidden_size)
    assert at_image_size(tiny_model, size) is tiny_model
    with pytest.raises(ValueError, match="patch size 8"):
        at_image_size(tiny_model, size + 4)


def test_the_conv_stem_makes_the_same_token_grid_and_survives_a_model_folder(tmp_path) -> None:
    from indexer.synthetic.vocab import write_synthetic_vocab
    from mplug2 import save_model_folder
    from mplug2.video_encoder import ConvStem

    torch.manual_seed(0)
    model = create_model("mplug2-small-conv").eval()
    visual = model.visual_encoder.visual
    assert isinstance(visual.stem, ConvStem) and not hasattr(visual, "conv1")
    widths = [layer.out_channels for layer in visual.stem.layers if isinstance(layer, torch.nn.Conv2d)]
    assert widths == [32, 64, 128], "three halvings for 8 px patches, channels doubling up to the width"
    size, grid = model.config.image_size, model.config.vision.grid
    video = torch.randn(2, 4, 3, size, size)
    with torch.no_grad():
        out = model.encode_video(video)
        assert visual.patch_features(video[:, 0]).shape == (2, 128, grid, grid)
    assert out.tokens.shape == (2, 1 + 4 * grid * grid, model.config.text.hidden_size)
    folder = save_model_folder(model, write_synthetic_vocab(tmp_path / "vocab.txt"), tmp_path / "model")
    again = create_model(folder).eval()
    assert again.config.vision.stem == "conv"
    with torch.no_grad():
        torch.testing.assert_close(again.encode_video(video).feat, out.feat)


WRITTEN_BEFORE_THE_STEM = """{"name": "mplug2-small", "vision": {"width": 128, "layers": 4, "heads": 2, "patch_size": 8,
"image_size": 96}, "text": {"vocab_size": 256, "hidden_size": 128, "num_attention_heads": 2, "intermediate_size": 512,
"text_encoder_layers": 4, "num_uni_layer": 2, "fusion_layers": 2, "fusion_layers_built": 2, "layer_norm_eps": 1e-12,
"max_position_embeddings": 64, "type_vocab_size": 2, "hidden_act": "gelu", "pad_token_id": 0}, "preprocess":
{"num_frames": 4, "mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711],
"video_interpolation": "nearest", "image_interpolation": "bicubic", "max_words": 30, "text_max_length_video": 32,
"text_max_length_image": 32}, "num_latents": 16, "embed_dim": 128}"""


def test_configs_with_the_official_stem_are_written_as_before_the_stem_existed() -> None:
    """The written config feeds model_fingerprint, which archives check: a key that appeared with an upgrade
    would make every archive indexed before it look indexed by another model, and old code could not read it."""
    import json

    from mplug2.config import MPLUG2Config

    # The bundled model's config.json up to a23982d (the last patch-stem release), provenance left out.
    written_before = json.loads(WRITTEN_BEFORE_THE_STEM)
    assert "stem" not in written_before["vision"]
    rewritten = json.dumps(MPLUG2Config.from_dict(written_before).to_dict(), sort_keys=True)
    assert rewritten == json.dumps(written_before, sort_keys=True)
    conv = get_config("mplug2-small-conv")
    assert conv.to_dict()["vision"]["stem"] == "conv"
    assert MPLUG2Config.from_dict(conv.to_dict()) == conv


def test_a_conv_branch_joins_a_patch_model_without_changing_it_and_then_learns(tmp_path) -> None:
    from indexer.synthetic.vocab import write_synthetic_vocab
    from mplug2 import save_model_folder
    from mplug2.factory import with_conv_branch

    torch.manual_seed(0)
    patch = create_model("mplug2-small")
    widened = with_conv_branch(patch)
    visual = widened.visual_encoder.visual
    assert widened.config.vision.stem == "patch+conv" and hasattr(visual, "conv1") and hasattr(visual, "stem")
    video = torch.randn(2, 4, 3, patch.config.image_size, patch.config.image_size)
    with torch.no_grad():
        torch.testing.assert_close(widened.encode_video(video).feat, patch.encode_video(video).feat)
    widened.train()
    widened.encode_video(video).feat.sum().backward()
    assert visual.stem.proj.weight.grad.abs().sum() > 0, "the silent branch still gets a gradient"
    with torch.no_grad():
        visual.stem.proj.weight.normal_(std=0.02)
        moved = widened.eval().encode_video(video).feat
    assert not torch.allclose(moved, patch.encode_video(video).feat)
    folder = save_model_folder(widened, write_synthetic_vocab(tmp_path / "vocab.txt"), tmp_path / "model")
    again = create_model(folder).eval()
    assert again.config.vision.stem == "patch+conv"
    with torch.no_grad():
        torch.testing.assert_close(again.encode_video(video).feat, moved)
    with pytest.raises(ValueError, match="joins 'patch' only"):
        with_conv_branch(again)


def test_a_stem_the_model_cannot_build_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown vision stem 'hybrid'"):
        VisionConfig(stem="hybrid")
    with pytest.raises(ValueError, match="patch size 14 must be 2"):
        VisionConfig(stem="conv", patch_size=14)
    with pytest.raises(ValueError, match="patch size 14 must be 2"):
        VisionConfig(stem="patch+conv", patch_size=14)


@pytest.mark.parametrize("stem", ["conv", "patch+conv"])
def test_clip_weights_are_refused_for_a_conv_stem(tmp_path, stem: str) -> None:
    from mplug2.checkpoint import CheckpointError
    from mplug2.init import load_clip_vision

    config = get_config("mplug2-small-conv")
    model = MPLUG2Retrieval(replace(config, vision=replace(config.vision, stem=stem)))
    source = {f"visual.{k}": v for k, v in create_model("mplug2-small").visual_encoder.visual.state_dict().items()}
    torch.save(source, tmp_path / "clip.pt")
    with pytest.raises(CheckpointError, match="patch stem only"):
        load_clip_vision(model, tmp_path / "clip.pt")


def test_a_visual_tower_trained_apart_replaces_a_models_own_and_nothing_else() -> None:
    from mplug2.factory import with_visual_tower

    torch.manual_seed(0)
    model, donor = create_model("mplug2-small"), create_model("mplug2-small-conv")
    grafted = with_visual_tower(model, donor)
    assert grafted.config.vision == donor.config.vision and grafted.config.text == model.config.text
    own, theirs, result = model.state_dict(), donor.state_dict(), grafted.state_dict()
    for key, value in result.items():
        torch.testing.assert_close(value, theirs[key] if key.startswith("visual_encoder.") else own[key], msg=key)
    video = torch.randn(1, 4, 3, model.config.image_size, model.config.image_size)
    grafted.eval(), donor.eval()
    with torch.no_grad():
        # The tower alone is the donor's; what follows it (universal layers, vision_proj) is the model's.
        torch.testing.assert_close(grafted.visual_encoder(video), donor.visual_encoder(video))
        assert not torch.allclose(grafted.encode_video(video).feat, donor.encode_video(video).feat)
    narrow = create_model("mplug2-tiny")
    with pytest.raises(ValueError, match="not as wide"):
        with_visual_tower(model, narrow)
