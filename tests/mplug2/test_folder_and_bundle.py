"""The project's model folder (save, memory-mapped load, float16 storage) and the ModelBundle on real inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mplug2 import create_model, load_model_bundle, save_model_folder
from mplug2.model import MPLUG2Retrieval


def test_folder_round_trip(tiny_model: MPLUG2Retrieval, vocab_file: Path, tmp_path: Path) -> None:
    save_model_folder(tiny_model, vocab_file, tmp_path / "m", provenance={"trained_on": "nothing"})
    loaded = create_model(tmp_path / "m")
    video = torch.randn(2, 3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode_video(video).feat, tiny_model.encode_video(video).feat)
    light = create_model(tmp_path / "m", with_fusion=False)
    assert not light.with_fusion


def test_float16_storage_halves_the_file_and_upcasts(tiny_model: MPLUG2Retrieval, vocab_file: Path, tmp_path) -> None:
    full = save_model_folder(tiny_model, vocab_file, tmp_path / "f32") / "model.safetensors"
    half = save_model_folder(tiny_model, vocab_file, tmp_path / "f16", dtype=torch.float16) / "model.safetensors"
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded = create_model(tmp_path / "f16")
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    video = torch.randn(1, 2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(
            loaded.encode_video(video).feat, tiny_model.encode_video(video).feat, atol=2e-3, rtol=2e-3
        )


def test_bundle_tokenises_resizes_and_scores(tiny_model: MPLUG2Retrieval, vocab_file: Path, tmp_path: Path) -> None:
    save_model_folder(tiny_model, vocab_file, tmp_path / "m")
    bundle = load_model_bundle(tmp_path / "m")
    text = bundle.encode_texts(["A red circle moves left!", "a green square"])
    assert text.tokens.shape == (2, 16, 64) and text.mask[0].sum() == 7  # [CLS] a red circle moves left [SEP]
    clips = np.random.default_rng(0).integers(0, 255, (2, 4, 48, 80, 3), dtype=np.uint8)  # resized to 32x32 inside
    video = bundle.encode_videos(clips)
    images = bundle.encode_images(clips[:, 0])
    assert video.feat.shape == images.feat.shape == (2, 32)
    logits = bundle.itm_match_logits(text, video.tokens)
    assert logits.shape == (2,) and torch.isfinite(logits).all()
    assert bundle.tokenizer.tokens("Circles, moving") == ["[CLS]", "circle", "##s", "[UNK]", "[SEP]"]
