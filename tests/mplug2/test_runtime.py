"""The fast runtime (OpenVINO) on the tiny model: fp32 parity with torch on every inference path at a batch size the
export never saw, the export cache (reused; rebuilt when corrupt or for other weights; written whole or not at all),
int8 calibrated on real rendered clips with its drift recorded, and the fallbacks to torch."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mplug2 import load_model_bundle
from mplug2.runtime import make_runner, resolve
from mplug2.runtime.cache import RECORD

pytest.importorskip("openvino")


def _inputs(bundle, batch: int = 3):
    rng = np.random.default_rng(0)
    clips = rng.integers(0, 256, (batch, bundle.config.preprocess.num_frames, 40, 48, 3), dtype=np.uint8)
    captions = ["a red circle moves left", "a blue square", "the green square grows on grey"][:batch]
    return clips, captions


def _all_paths(bundle, clips, captions) -> dict[str, torch.Tensor]:
    video = bundle.encode_videos(clips)
    image = bundle.encode_images(clips[:, 0])
    text = bundle.encode_texts(captions)
    itm = bundle.itm_pair_logits(text, video.tokens)
    return {
        "video tokens": video.tokens,
        "video feat": video.feat,
        "image tokens": image.tokens,
        "image feat": image.feat,
        "text tokens": text.tokens,
        "text feat": text.feat,
        "itm": itm,
    }


def test_openvino_fp32_matches_torch_within_1e4(tiny_model_dir: Path, tmp_path: Path) -> None:
    bundle = load_model_bundle(tiny_model_dir)
    clips, captions = _inputs(bundle)
    reference = _all_paths(bundle, clips, captions)
    assert bundle.use_runtime("openvino", "fp32", cache_root=tmp_path) is None
    assert (bundle.runtime, bundle.precision) == ("openvino", "fp32")
    got = _all_paths(bundle, clips, captions)
    for name, expected in reference.items():
        assert got[name].shape == expected.shape, name
        assert torch.allclose(got[name], expected, atol=1e-4, rtol=0), (name, (got[name] - expected).abs().max())
    one = bundle.encode_texts(["a red circle"])  # another batch size and the same graph
    assert one.feat.shape == (1, bundle.config.embed_dim)


def test_export_cache_is_reused_and_corruption_rebuilt(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    bundle = load_model_bundle(tiny_model_dir, with_fusion=False)
    _, captions = _inputs(bundle)
    bundle.use_runtime("openvino", "fp32", cache_root=tmp_path, prepare=("text",))
    assert "exporting the text encoder" in capsys.readouterr().err
    first = bundle.encode_texts(captions).feat
    (record_path,) = tmp_path.glob(f"*/{RECORD}")
    record = json.loads(record_path.read_text())
    assert set(record["graphs"]) == {"text"}
    assert record["precision"] == "fp32" and record["runtime"] == "openvino"
    assert record["graphs"]["text"]["cosine_min"] > 0.99999

    again = load_model_bundle(tiny_model_dir, with_fusion=False)
    again.use_runtime("openvino", "fp32", cache_root=tmp_path, prepare=("text",))
    assert "exporting" not in capsys.readouterr().err, "a valid cache is loaded, not exported again"
    assert torch.equal(again.encode_texts(captions).feat, first)

    weights = record_path.parent / "text.bin"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))  # same size, other bytes: only the checksum tells
    rebuilt = load_model_bundle(tiny_model_dir, with_fusion=False)
    rebuilt.use_runtime("openvino", "fp32", cache_root=tmp_path, prepare=("text",))
    assert "exporting the text encoder" in capsys.readouterr().err, "a corrupt export is rebuilt, never used"
    assert torch.allclose(rebuilt.encode_texts(captions).feat, first, atol=1e-6)
    record_path.write_text("{not json")
    broken_record = load_model_bundle(tiny_model_dir, with_fusion=False)
    broken_record.use_runtime("openvino", "fp32", cache_root=tmp_path, prepare=("text",))
    assert "exporting the text encoder" in capsys.readouterr().err
    assert not list(record_path.parent.glob(".*.tmp")) and not list(record_path.parent.glob("tmp*"))


def test_other_weights_get_their_own_export(tiny_model_dir: Path, tmp_path: Path) -> None:
    bundle = load_model_bundle(tiny_model_dir, with_fusion=False)
    bundle.use_runtime("openvino", "fp32", cache_root=tmp_path, prepare=("text",))
    other = load_model_bundle(tiny_model_dir, with_fusion=False)
    with torch.no_grad():
        other.model.text_proj.weight.mul_(2)  # stale: the cache for the old weights must not serve these
    expected = other.encode_texts(["a red circle"]).feat
    other.use_runtime("openvino", "fp32", cache_root=tmp_path, prepare=("text",))
    assert len(list(tmp_path.glob(f"*/{RECORD}"))) == 2
    assert torch.allclose(other.encode_texts(["a red circle"]).feat, expected, atol=1e-4)


def test_int8_is_calibrated_on_real_clips_and_records_its_drift(tiny_model_dir: Path, tmp_path: Path) -> None:
    from indexer.synthetic.calibration import calibration_clips

    bundle = load_model_bundle(tiny_model_dir, with_fusion=False)
    clips, captions = calibration_clips(bundle.config.preprocess.num_frames, count=8)
    reference = bundle.encode_videos(clips).feat
    calls = []

    def material():
        calls.append(1)
        return clips, captions

    fallback = bundle.use_runtime("openvino", "int8", cache_root=tmp_path, calibration=material, prepare=("video",))
    assert calls == [1]
    (record_path,) = tmp_path.glob(f"*/{RECORD}")
    entry = json.loads(record_path.read_text())["graphs"].get("video")
    if fallback is None:  # validated: the recorded drift is what the held-out clips show
        assert entry["validated_on"] == "held-out calibration clips" and entry["calibration_items"] == 6
        cosine = torch.nn.functional.cosine_similarity(bundle.encode_videos(clips[-2:]).feat, reference[-2:])
        assert float(cosine.min()) == pytest.approx(entry["cosine_min"], abs=1e-4)
    else:  # refused for drifting too far: torch serves, and says why
        assert "drifts too far" in fallback and entry is None and bundle.runtime == "torch"


def test_int8_without_calibration_falls_back_to_torch(tiny_model_dir: Path, tmp_path: Path, caplog) -> None:
    bundle = load_model_bundle(tiny_model_dir, with_fusion=False)
    fallback = bundle.use_runtime("openvino", "int8", cache_root=tmp_path, prepare=("video",))
    assert "calibration" in fallback and (bundle.runtime, bundle.precision) == ("torch", "fp32")
    assert bundle.runner is bundle.model
    assert "running torch fp32 instead" in caplog.text


def test_missing_runtime_falls_back_to_torch(tiny_model_dir: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # what `import openvino` meets when it is not installed
    bundle = load_model_bundle(tiny_model_dir, with_fusion=False)
    fallback = bundle.use_runtime("openvino", "fp32", cache_root=tmp_path, prepare=("text",))
    assert "not installed" in fallback and bundle.runtime == "torch"
    assert bundle.encode_texts(["a red circle"]).feat.shape[0] == 1


def test_auto_picks_by_precision_and_device() -> None:
    assert resolve("auto", "fp32", "cpu") == "torch"
    assert resolve("auto", "int8", "cpu") == "openvino"
    assert resolve("auto", "fp32", "cuda") == "torch"
    with pytest.raises(ValueError, match="precision"):
        resolve("auto", "fp16")
    choice = make_runner(object(), "openvino", "fp32", device_type="cuda")
    assert choice.runtime == "torch" and "CPU only" in choice.fallback


def test_a_precision_the_model_folder_withholds_is_refused_with_its_reason(
    tiny_model_dir: Path, tmp_path: Path, caplog
) -> None:
    import shutil

    folder = shutil.copytree(tiny_model_dir, tmp_path / "model")
    why = "int8 moved t2i R@1 by -0.04 on a fresh seed"
    (folder / "runtime.json").write_text(json.dumps({"withheld": {"int8": why}}))
    bundle = load_model_bundle(folder, with_fusion=False)
    fallback = bundle.use_runtime("openvino", "int8", cache_root=tmp_path / "cache", prepare=("text",))
    assert why in fallback and (bundle.runtime, bundle.precision) == ("torch", "fp32")
    assert "does not offer int8" in caplog.text
    assert not (tmp_path / "cache").exists()  # refused before anything was exported
    assert bundle.use_runtime("openvino", "fp32", cache_root=tmp_path / "cache", prepare=("text",)) is None
    assert (bundle.runtime, bundle.precision) == ("openvino", "fp32")


def test_a_measured_drift_is_recorded_as_the_folders_verdict(tiny_model_dir: Path, tmp_path: Path) -> None:
    import shutil

    from mplug2.runtime.offered import checked, record_drift, withheld

    folder = shutil.copytree(tiny_model_dir, tmp_path / "model")
    assert checked(folder) == {}, "nothing measured yet"
    within = [
        {"seed": 11, "reference": {"t2v_R@1": 0.65, "t2i_R@1": 0.48}, "candidate": {"t2v_R@1": 0.64, "t2i_R@1": 0.48}}
    ]
    beyond = [*within, {"seed": 13, "reference": {"t2v_R@1": 0.65}, "candidate": {"t2v_R@1": 0.6375}}]
    assert record_drift(folder, "int8", "OpenVINO int8", within)  # 0.01 exactly is within
    assert withheld(folder) == {}
    assert not record_drift(folder, "int8", "OpenVINO int8", beyond)
    why = withheld(folder)["int8"]
    assert "moved R@1 by more than 0.01" in why and "seed 13 t2v_R@1 0.65 -> 0.6375" in why
    bundle = load_model_bundle(folder, with_fusion=False)
    assert why in bundle.use_runtime("openvino", "int8", cache_root=tmp_path / "cache", prepare=("text",))
    assert record_drift(folder, "int8", "OpenVINO int8", within)  # a later measurement lifts the refusal
    assert (
        withheld(folder) == {}
        and "kept R@1 within 0.01" in json.loads((folder / "runtime.json").read_text())["checked"]["int8"]
        and "kept R@1 within 0.01" in checked(folder)["int8"]
    )


@pytest.mark.parametrize("stem", ["conv", "patch+conv"])
def test_a_model_with_a_conv_stem_exports_with_fp32_parity(tmp_path: Path, stem: str) -> None:
    from indexer.synthetic.vocab import write_synthetic_vocab
    from mplug2 import create_model, save_model_folder
    from mplug2.factory import with_conv_branch

    torch.manual_seed(0)
    if stem == "conv":
        model = create_model("mplug2-small-conv")
    else:
        model = with_conv_branch(create_model("mplug2-small"))
        torch.nn.init.normal_(model.visual_encoder.visual.stem.proj.weight, std=0.02)  # the branch past its start
    folder = save_model_folder(model, write_synthetic_vocab(tmp_path / "vocab.txt"), tmp_path / "model")
    bundle = load_model_bundle(folder)
    clips, _ = _inputs(bundle, batch=2)
    reference = bundle.encode_videos(clips)
    assert bundle.use_runtime("openvino", "fp32", cache_root=tmp_path / "cache") is None
    got = bundle.encode_videos(clips)
    assert torch.allclose(got.feat, reference.feat, atol=1e-4, rtol=0), (got.feat - reference.feat).abs().max()
    assert torch.allclose(got.tokens, reference.tokens, atol=1e-4, rtol=0)
