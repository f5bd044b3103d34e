"""Official mPLUG-2 checkpoints → the project's own format (safetensors + config JSON + vocab), and the one-command
path for known checkpoints: fetch (or take a file the user downloaded), verify, convert into `models_dir()`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from mplug2.checkpoint import LoadReport, load_official_state_dict, read_checkpoint
from mplug2.config import MPLUG2Config
from mplug2.download import download, verify_file
from mplug2.factory import get_config, known_config
from mplug2.folder import save_model_folder
from mplug2.init import init_weights
from mplug2.model import MPLUG2Retrieval
from mplug2.pretrained import BERT_VOCAB, KNOWN_CHECKPOINTS, PretrainedCfg, fetched_folder, models_dir


def vision_settings(vision: str) -> dict:
    """`large`/`base` (the released CLIP ViTs) or a JSON file with width, layers, heads, patch_size, image_size."""
    if vision in ("large", "base"):
        return dict(get_config(f"mplug2-{vision}").to_dict()["vision"])
    path = Path(vision)
    if not path.is_file():
        raise ValueError(f"--vision must be large, base or a JSON file; {vision!r} is neither")
    return json.loads(path.read_text())


def config_from_official_files(
    name: str,
    bert_config: str | Path,
    vision: str,
    *,
    image_size: int | None = None,
    num_frames: int | None = None,
    embed_dim: int = 256,
) -> MPLUG2Config:
    """The architecture from the official BERT config json and the ViT settings (`vision_settings`)."""
    try:
        bert = json.loads(Path(bert_config).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{bert_config}: not a BERT config JSON file ({type(error).__name__})") from None
    vision_fields = vision_settings(vision)
    if image_size is not None:
        vision_fields["image_size"] = image_size
    return MPLUG2Config.from_official(name, bert, vision_fields, embed_dim=embed_dim, num_frames=num_frames)


def convert_official_checkpoint(
    checkpoint: str | Path,
    config: MPLUG2Config,
    out_dir: str | Path,
    vocab: str | Path = BERT_VOCAB,
    *,
    trust_pickle: bool = False,
    allow_missing_heads: bool = False,
    dtype: torch.dtype = torch.float32,
) -> LoadReport:
    """Load `checkpoint` through the official loader into `config`'s model and write it to `out_dir`."""
    model = init_weights(MPLUG2Retrieval(config))
    report = load_official_state_dict(
        model, read_checkpoint(checkpoint, trust_pickle=trust_pickle), allow_missing_heads=allow_missing_heads
    )
    provenance = {"converted_from": str(Path(checkpoint).resolve()), "load_report": report.summary()}
    save_model_folder(model, vocab, out_dir, dtype=dtype, provenance=provenance)
    return report


@dataclass(frozen=True)
class Fetched:
    name: str
    checkpoint: Path  # the verified file
    folder: Path | None  # the converted model folder (None for files that are not a model, e.g. CLIP weights)
    report: LoadReport | None


def install_known_checkpoint(
    name: str,
    *,
    url: str | None = None,
    from_file: str | Path | None = None,
    trust_pickle: bool = False,
    allow_missing_heads: bool = False,
    dtype: torch.dtype = torch.float32,
) -> Fetched:
    """Known checkpoint `name` → verified file → model folder `fetched_folder(cfg)` (official format only).

    The file comes from `from_file` (downloaded by hand), else from an earlier download, else from `url` or the
    recorded address. Raises ValueError (unknown name), `DownloadError`, `ChecksumError` or `CheckpointError`.
    """
    cfg = known_checkpoint(name)
    checkpoint = _obtain(cfg, url, from_file)
    if cfg.format != "official":
        return Fetched(name, checkpoint, None, None)
    folder = fetched_folder(cfg)
    report = convert_official_checkpoint(
        checkpoint,
        known_config(cfg),
        folder,
        cfg.vocab or BERT_VOCAB,
        trust_pickle=trust_pickle,
        allow_missing_heads=allow_missing_heads or cfg.allow_missing_heads,
        dtype=dtype,
    )
    return Fetched(name, checkpoint, folder, report)


def known_checkpoint(name: str) -> PretrainedCfg:
    if name not in KNOWN_CHECKPOINTS:
        raise ValueError(f"unknown checkpoint {name!r}; known: {', '.join(sorted(KNOWN_CHECKPOINTS))}")
    cfg = KNOWN_CHECKPOINTS[name]
    if cfg.format == "folder":
        raise ValueError(f"{name} ships with the project in {cfg.file}: there is nothing to fetch")
    return cfg


def _obtain(cfg: PretrainedCfg, url: str | None, from_file: str | Path | None) -> Path:
    if from_file is not None:
        verify_file(from_file, cfg.sha256, cfg.size)
        return Path(from_file)
    target = models_dir() / "downloads" / cfg.file
    if target.is_file():  # an earlier fetch got it (then failed to convert, e.g. without --trust-pickle)
        verify_file(target, cfg.sha256, cfg.size)
        return target
    source = url or cfg.url
    if not source:
        raise ValueError(f"{cfg.name} has no download address; pass --from-file")
    return download(source, target, cfg.sha256, cfg.size)
