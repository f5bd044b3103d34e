"""mplug2-large has exactly the released model's state-dict names and shapes for what retrieval keeps (meta device)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from mplug2 import get_config
from mplug2.checkpoint import ignored_group
from mplug2.model import MPLUG2Retrieval

KEYS_TSV = Path(__file__).resolve().parents[3] / "shared" / "reference" / "mplug2-large-keys.tsv"


def released_keys() -> dict[str, tuple[int, ...]]:
    if not KEYS_TSV.is_file():
        pytest.skip(f"{KEYS_TSV} is not here")
    shapes = {}
    for line in KEYS_TSV.read_text().splitlines()[1:]:
        key, shape = line.split("\t")[:2]
        shapes[key] = () if shape == "scalar" else tuple(int(n) for n in shape.split("x"))
    return shapes


def test_large_model_keys_and_shapes_match_the_release() -> None:
    config = get_config("mplug2-large")
    with torch.device("meta"):
        model = MPLUG2Retrieval(config)
    ours = {key: tuple(tensor.shape) for key, tensor in model.state_dict().items()}
    release = released_keys()
    assert all(tensor.is_meta for tensor in model.state_dict().values()), "nothing was allocated"
    extra = sorted(set(ours) - set(release))
    assert extra == [], f"keys the release does not have: {extra[:5]}"
    wrong = {k: (ours[k], release[k]) for k in ours if ours[k] != release[k]}
    assert wrong == {}
    # Everything the release has that the model does not keep is dropped by a listed rule, nothing else.
    dropped = set(release) - set(ours)
    unexplained = sorted(k for k in dropped if ignored_group(k, config.text.fusion_layer_ids) is None)
    assert unexplained == []
    groups = {ignored_group(k, config.text.fusion_layer_ids) for k in dropped}
    assert groups == {
        "unused CLIP text tower",
        "unused CLIP projection",
        "unused fusion embeddings",
        "unused vision FFN of the universal layers",
        "fusion layers that never run",
    }


def test_the_fusion_layers_kept_are_the_last_six() -> None:
    with torch.device("meta"):
        model = MPLUG2Retrieval(get_config("mplug2-large"))
    assert list(model.fusion_encoder.encoder.layer.keys()) == [str(i) for i in range(18, 24)]


@pytest.mark.parametrize("name", ["mplug2-large", "mplug2-base", "mplug2-tiny"])
def test_every_config_builds_on_the_meta_device(name: str) -> None:
    with torch.device("meta"):
        model = MPLUG2Retrieval(get_config(name))
    assert sum(p.numel() for p in model.parameters()) > 0


def test_large_parameter_counts_match_the_published_sizes() -> None:
    """The release's sizes (MPLUG2_NOTES.md) count modules retrieval never runs; add back what the TSV says they
    hold: visual 354.6 M with the unused `proj`, text 359.3 M with the unused vision FFNs, six fusion layers 100.8 M."""
    release = released_keys()

    def released(group: str) -> int:
        return sum(math.prod(shape) for key, shape in release.items() if ignored_group(key, range(18, 24)) == group)

    with torch.device("meta"):
        model = MPLUG2Retrieval(get_config("mplug2-large"))

    def count(module: torch.nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    visual = count(model.visual_encoder) + released("unused CLIP projection")
    text = count(model.text_encoder) + released("unused vision FFN of the universal layers")
    assert visual / 1e6 == pytest.approx(354.6, abs=0.1)
    assert text / 1e6 == pytest.approx(359.3, abs=0.1)
    assert count(model.fusion_encoder) / 1e6 == pytest.approx(100.8, abs=0.1)
