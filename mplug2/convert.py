"""Convert an official mPLUG-2 checkpoint into the project's own format (safetensors + config JSON + vocab)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from mplug2.checkpoint import LoadReport, load_official_state_dict, read_checkpoint
from mplug2.config import MPLUG2Config
from mplug2.factory import get_config
from mplug2.folder import save_model_folder
from mplug2.init import init_weights
from mplug2.model import MPLUG2Retrieval


def vision_settings(vision: str) -> dict:
    """`large`/`base` (the released CLIP ViTs) or a JSON file with width, layers, heads, patch_size, image_size."""
    if vision in ("large", "base"):
        return dict(get_config(f"mplug2-{vision}").to_dict()["vision"])
    path = Path(vision)
    if not path.is_file():
        raise ValueError(f"--vision must be large, base or a JSON file; {vision!r} is neither")
    return json.loads(path.read_text())


def convert_official_checkpoint(
    checkpoint: str | Path,
    bert_config: str | Path,
    vision: str,
    vocab: str | Path,
    out_dir: str | Path,
    *,
    image_size: int | None = None,
    num_frames: int | None = None,
    embed_dim: int = 256,
    trust_pickle: bool = False,
    allow_missing_heads: bool = False,
    dtype: torch.dtype = torch.float32,
) -> LoadReport:
    """Load `checkpoint` through the official loader and write it to `out_dir`. Returns what the loader found."""
    bert = json.loads(Path(bert_config).read_text())
    vision_fields = vision_settings(vision)
    if image_size is not None:
        vision_fields["image_size"] = image_size
    name = Path(out_dir).name
    config = MPLUG2Config.from_official(name, bert, vision_fields, embed_dim=embed_dim, num_frames=num_frames)
    model = init_weights(MPLUG2Retrieval(config))
    report = load_official_state_dict(
        model, read_checkpoint(checkpoint, trust_pickle=trust_pickle), allow_missing_heads=allow_missing_heads
    )
    provenance = {"converted_from": str(Path(checkpoint).resolve()), "load_report": report.summary()}
    save_model_folder(model, vocab, out_dir, dtype=dtype, provenance=provenance)
    return report
