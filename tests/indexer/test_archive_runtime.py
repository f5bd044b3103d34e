"""The archive records the runtime and precision its vectors were encoded with: a run asking for others refuses,
defaults follow the archive (an archive from before runtimes were recorded counts as torch fp32), and an index run
through OpenVINO records what actually ran."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from indexer.indexing.options import IndexOptions
from indexer.settings import RuntimeOptions, Settings, default_model_dir
from indexer.store.archive import Archive, ArchiveError
from indexer.store.runtime import serve
from mplug2 import load_model_bundle
from mplug2.runtime.offered import checked, withheld


def test_defaults_follow_the_archive() -> None:
    assert RuntimeOptions().for_archive(None) == ("auto", "fp32")
    assert RuntimeOptions().for_archive(("openvino", "int8")) == ("openvino", "int8")
    assert RuntimeOptions().for_archive(("torch", "fp32")) == ("torch", "fp32")
    assert RuntimeOptions(precision="int8").for_archive(("torch", "fp32")) == ("auto", "int8")
    assert RuntimeOptions("torch").for_archive(("openvino", "int8")) == ("torch", "int8")


def test_an_archive_refuses_a_mixed_precision(settings: Settings, tiny_model_dir: Path) -> None:
    archive = Archive(settings)
    assert archive.runtime is None
    archive.bind_model(load_model_bundle(tiny_model_dir, with_fusion=False))
    assert archive.runtime == ("torch", "fp32")
    meta = json.loads((settings.index_dir / "archive.json").read_text())
    assert (meta["runtime"], meta["precision"]) == ("torch", "fp32")
    other = load_model_bundle(tiny_model_dir, with_fusion=False)
    other.runtime, other.precision = "openvino", "int8"  # as use_runtime leaves a bundle it switched
    with pytest.raises(ArchiveError, match=r"encoded with torch fp32, not openvino int8.*--precision fp32"):
        archive.bind_model(other)
    archive.close()


def test_an_archive_from_before_runtimes_counts_as_torch_fp32(settings: Settings, tiny_model_dir: Path) -> None:
    archive = Archive(settings)
    archive.bind_model(load_model_bundle(tiny_model_dir, with_fusion=False))
    meta_path = settings.index_dir / "archive.json"
    meta = json.loads(meta_path.read_text())
    del meta["runtime"], meta["precision"]
    meta_path.write_text(json.dumps(meta))
    archive.close()
    reopened = Archive(settings)
    assert reopened.runtime == ("torch", "fp32")
    bundle = load_model_bundle(tiny_model_dir, with_fusion=False)
    assert serve(bundle, IndexOptions().runtime, reopened.runtime, settings.home) is None
    reopened.bind_model(bundle)  # the default asks for what the archive has: no refusal, no re-encoding
    reopened.close()


def test_an_openvino_index_run_records_its_runtime(
    settings: Settings, tiny_model_dir: Path, synthetic_media: Path, tmp_path: Path
) -> None:
    pytest.importorskip("openvino")
    from indexer.indexing.pipeline import index_paths

    settings = dataclasses.replace(settings, home=tmp_path / "home")  # the export cache lives in the home
    videos = sorted((synthetic_media / "test" / "videos").iterdir())[:2]
    bundle = load_model_bundle(tiny_model_dir, with_fusion=False)
    options = IndexOptions(workers=1, progress=False, runtime=RuntimeOptions("openvino", "fp32"))
    summary = index_paths(videos, settings, bundle, options)
    assert summary.counts()["indexed"] == 2
    meta = json.loads((settings.index_dir / "archive.json").read_text())
    assert (meta["runtime"], meta["precision"]) == ("openvino", "fp32")
    assert list((settings.home / "runtime-cache").glob("*/video.xml"))


def test_models_shows_the_exports_and_their_drift(
    settings: Settings, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("openvino")
    from click.testing import CliRunner

    from indexer.cli import cli

    monkeypatch.setenv("MPLUG2_SEARCH_HOME", str(tmp_path / "home"))
    bundle = load_model_bundle(tiny_model_dir, with_fusion=False)
    assert serve(bundle, RuntimeOptions("openvino", "fp32"), None, tmp_path / "home", prepare=("text",)) is None
    output = CliRunner().invoke(cli, ["models"]).output
    assert "runtime exports" in output and str(tiny_model_dir) in output
    assert "openvino fp32" in output and "text   cosine min 1.0000" in output
    # the bundled model's int8 verdict (runtime.json: offered only if R@1 stayed within 0.01), with its measurement
    bundled = default_model_dir()
    verdict = "not offered" if "int8" in withheld(bundled) else "offered"
    assert f"int8 {verdict}: {checked(bundled)['int8']}" in output


def test_an_archive_whose_model_folder_now_holds_other_weights_says_how_to_re_embed(
    settings: Settings, tiny_model_dir: Path
) -> None:
    import torch

    archive = Archive(settings)
    archive.bind_model(load_model_bundle(tiny_model_dir, with_fusion=False))
    upgraded = load_model_bundle(tiny_model_dir, with_fusion=False)  # the same folder, as after an upgrade
    with torch.no_grad():
        next(upgraded.model.parameters()).add_(1.0)
    with pytest.raises(
        ArchiveError, match=r"now holds other weights.*a new --db and --index-dir; for the demo, delete its folder"
    ) as caught:
        archive.bind_model(upgraded)
    assert "Use --model" not in str(caught.value)  # naming the same folder again would not help
    archive.close()
