"""convert-checkpoint end to end on the parity fixture; fetch-checkpoint through a file:// address."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from indexer.cli import cli
from mplug2 import create_model
from tests.mplug2.conftest import parity_fixture_dir


def test_convert_checkpoint_writes_a_folder_that_reproduces_the_fixture(vocab_file: Path, tmp_path: Path) -> None:
    folder = parity_fixture_dir()
    if not (folder / "meta.json").is_file():
        pytest.skip("no parity fixture")
    meta = json.loads((folder / "meta.json").read_text())
    bert = dict(meta["bert"], num_hidden_layers=meta["fusion_layers_built"])
    (tmp_path / "bert.json").write_text(json.dumps(bert))
    (tmp_path / "vision.json").write_text(json.dumps(meta["vision"]))
    out = tmp_path / "converted"
    result = CliRunner().invoke(
        cli,
        [
            "convert-checkpoint",
            str(folder / "checkpoint.pth"),
            "--bert-config",
            str(tmp_path / "bert.json"),
            "--vision",
            str(tmp_path / "vision.json"),
            "--vocab",
            str(vocab_file),
            "--out",
            str(out),
            "--embed-dim",
            str(meta["embed_dim"]),
            "--num-frames",
            str(meta["vision"]["num_frames"]),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "ignored 78 (text decoder)" in result.output
    model = create_model(out)
    reference = torch.load(folder / "reference.pt", weights_only=True)
    with torch.no_grad():
        feat = model.encode_video(reference["video"].permute(0, 2, 1, 3, 4)).feat
    torch.testing.assert_close(feat, reference["itc_video_feat"], **meta["tolerance"])
    assert json.loads((out / "config.json").read_text())["preprocess"]["num_frames"] == meta["vision"]["num_frames"]


def test_convert_refuses_pickled_files_without_trust(vocab_file: Path, tmp_path: Path) -> None:
    from types import SimpleNamespace

    torch.save({"model": {"x": torch.zeros(1)}, "args": SimpleNamespace(lr=1e-4)}, tmp_path / "p.pth")
    (tmp_path / "bert.json").write_text("{}")
    result = CliRunner().invoke(
        cli,
        [
            "convert-checkpoint",
            str(tmp_path / "p.pth"),
            "--bert-config",
            str(tmp_path / "bert.json"),
            "--vocab",
            str(vocab_file),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert result.exit_code != 0 and "--trust-pickle" in result.output


def test_fetch_checkpoint_downloads_only_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MPLUG2_MODELS_DIR", str(tmp_path / "models"))
    source = tmp_path / "served.tar"
    source.write_bytes(b"weights")
    result = CliRunner().invoke(cli, ["fetch-checkpoint", "clip-vit-l-14", "--url", source.as_uri()])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "models" / "downloads" / "ViT-L-14.tar").read_bytes() == b"weights"
    assert "mplug2-large" in CliRunner().invoke(cli, ["models"]).output
