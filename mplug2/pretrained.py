"""Known checkpoints: where weights come from, kept apart from the architectures (timm's PretrainedCfg idea).

Nothing here downloads by itself. `url` is for an explicit fetch by the user (`mplug2-search fetch-checkpoint`);
`preprocess` overrides the architecture's defaults with what the weights were trained with. A fetched official
checkpoint is converted once into a model folder under `models_dir()`, where `create_model(name)` finds it.

The released models read text through bert-base-uncased's WordPiece vocabulary. It ships in `mplug2/vocab/`
(Apache-2.0, from google-research/bert; sha256 below), so converting a checkpoint needs nothing else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BERT_VOCAB = Path(__file__).resolve().parent / "vocab" / "bert-base-uncased.txt"
BERT_VOCAB_SHA256 = "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"
BERT_VOCAB_URL = "https://huggingface.co/bert-base-uncased/resolve/main/vocab.txt"


@dataclass(frozen=True)
class PretrainedCfg:
    name: str
    architecture: str  # a config in model_configs/ (or a config JSON file)
    format: str  # "official" (a .pth from the release), "folder" (this project's format), "clip" (CLIP weights)
    file: str  # file name, or for "folder" the folder
    url: str | None = None
    sha256: str | None = None  # checked after a download or on --from-file, when known
    size: int | None = None  # bytes, when known (a cut-short download is caught even without a sha256)
    preprocess: dict = field(default_factory=dict)
    vocab: str | None = None  # the vocab file the weights read text with; None: bert-base-uncased (shipped)
    allow_missing_heads: bool = False  # convert even if the file lacks the ITC/ITM heads (they start random)
    notes: str = ""


KNOWN_CHECKPOINTS: dict[str, PretrainedCfg] = {
    cfg.name: cfg
    for cfg in (
        PretrainedCfg(
            name="mplug2-synth",
            architecture="mplug2-small",
            format="folder",
            file=str(REPO_ROOT / "data" / "models" / "mplug2-synth"),
            notes="the small model this project trains on its synthetic shapes benchmark; bundled, offline default",
        ),
        PretrainedCfg(
            name="mplug2-large-pretrain",
            architecture="mplug2-large",
            format="official",
            file="mPLUG2_Pretrain.pth",
            url="http://tjfd2.oss-cn-zhangjiakou.aliyuncs.com/mplug2/mPLUG2_Pretrain.pth",
            preprocess={"num_frames": 16},
            notes="the released pre-training checkpoint (zero-shot retrieval); whether it holds the ITC/ITM heads is "
            "unverified: conversion says so if they are missing",
        ),
        PretrainedCfg(
            name="clip-vit-l-14",
            architecture="mplug2-large",
            format="clip",
            file="ViT-L-14.tar",
            url="https://alice-open.oss-cn-zhangjiakou.aliyuncs.com/mPLUG/ViT-L-14.tar",
            notes="the CLIP weights the official training starts the video encoder from",
        ),
    )
}


def models_dir() -> Path:
    """Where fetched checkpoints become model folders: `$MPLUG2_MODELS_DIR`, else `models/` in the home folder."""
    explicit = os.environ.get("MPLUG2_MODELS_DIR")
    if explicit:
        return Path(explicit).expanduser()
    return Path(os.environ.get("MPLUG2_SEARCH_HOME", Path.home() / ".mplug2-search")).expanduser() / "models"


def fetched_folder(cfg: PretrainedCfg) -> Path:
    """The model folder `fetch-checkpoint` makes for a known checkpoint (a bundled folder is its own)."""
    return Path(cfg.file) if cfg.format == "folder" else models_dir() / cfg.name
