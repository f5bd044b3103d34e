"""Starting from plain CLIP and BERT weights, as the official training does (checkpoints made here)."""

from __future__ import annotations

from pathlib import Path

import open_clip
import torch
from open_clip.model import CLIPTextCfg, CLIPVisionCfg

from mplug2 import create_model
from mplug2.init import load_bert, load_clip_vision


def test_a_clip_vit_becomes_the_videoformer(tmp_path: Path) -> None:
    torch.manual_seed(0)
    clip = open_clip.CLIP(
        embed_dim=32,
        vision_cfg=CLIPVisionCfg(layers=2, width=64, head_width=32, patch_size=8, image_size=32),
        text_cfg=CLIPTextCfg(context_length=8, vocab_size=50, width=32, heads=2, layers=1),
        quick_gelu=True,
    ).eval()
    path = tmp_path / "clip.pt"
    torch.save(clip.state_dict(), path)
    model = create_model("mplug2-tiny")
    assert load_clip_vision(model, path) > 0
    image = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        reference = clip.visual(image)  # ln_post(CLS) @ proj
        tokens = model.visual_encoder(image[:, None])  # one frame; the adapters start as the identity
    torch.testing.assert_close(tokens[:, 0] @ clip.visual.proj, reference, atol=1e-5, rtol=1e-5)


def test_hugging_face_bert_initialises_text_and_fusion_layers(tmp_path: Path) -> None:
    donor = create_model("mplug2-tiny")
    hf_state = {f"bert.{k}": v for k, v in donor.text_encoder.state_dict().items() if "crossattention" not in k}
    hf_state["bert.pooler.dense.weight"] = torch.zeros(64, 64)  # HF extras that have no place here
    hf_state["cls.predictions.bias"] = torch.zeros(128)
    torch.save(hf_state, tmp_path / "pytorch_model.bin")
    model = create_model("mplug2-tiny")
    load_bert(model, tmp_path / "pytorch_model.bin")
    torch.testing.assert_close(
        model.text_encoder.encoder.layer[0].attention.self.query.weight,
        donor.text_encoder.encoder.layer[0].attention.self.query.weight,
    )
    # Fusion layer i starts from BERT layer i (tiny runs fusion layers 1 and 2 of 3).
    torch.testing.assert_close(
        model.fusion_encoder.encoder.layer["2"].intermediate.dense.weight,
        donor.text_encoder.encoder.layer[2].intermediate.dense.weight,
    )


def test_openai_torchscript_archives_are_read(tmp_path: Path) -> None:
    from mplug2.init import read_any_state_dict

    module = torch.jit.script(torch.nn.Linear(3, 2))
    module.save(str(tmp_path / "jit.pt"))
    assert set(read_any_state_dict(tmp_path / "jit.pt")) == {"weight", "bias"}
