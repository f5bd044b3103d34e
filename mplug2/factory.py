"""One factory: `create_model(name or folder)`; `list_models()` names what it can build."""

from __future__ import annotations

from pathlib import Path

import torch

from mplug2.checkpoint import load_official_state_dict, read_checkpoint
from mplug2.config import MPLUG2Config
from mplug2.folder import VOCAB, is_model_folder, load_model_folder
from mplug2.init import init_weights
from mplug2.model import MPLUG2Retrieval
from mplug2.pretrained import KNOWN_CHECKPOINTS

CONFIG_DIR = Path(__file__).parent / "model_configs"


def list_models() -> list[str]:
    """Architecture configs, then known checkpoints."""
    configs = sorted(path.stem for path in CONFIG_DIR.glob("*.json"))
    return configs + sorted(name for name in KNOWN_CHECKPOINTS if name not in configs)


def get_config(name: str) -> MPLUG2Config:
    path = CONFIG_DIR / f"{name}.json"
    if not path.is_file():
        raise ValueError(f"unknown model config {name!r}; known: {', '.join(list_models())}")
    return MPLUG2Config.from_json(path)


def resolve_folder(name_or_dir: str | Path) -> Path | None:
    """The model folder a name or path refers to, if any (a folder path, or a known folder checkpoint)."""
    if is_model_folder(name_or_dir):
        return Path(name_or_dir)
    known = KNOWN_CHECKPOINTS.get(str(name_or_dir))
    if known is not None and known.format == "folder":
        if not is_model_folder(known.file):
            raise FileNotFoundError(f"the model {known.name} should be at {known.file}, which is not a model folder")
        return Path(known.file)
    return None


def create_model(
    name_or_dir: str | Path,
    pretrained: str | Path | None = None,
    *,
    with_fusion: bool = True,
    device: str | torch.device = "cpu",
    trust_pickle: bool = False,
    allow_missing_heads: bool = False,
) -> MPLUG2Retrieval:
    """A model in eval mode.

    `name_or_dir`: a model folder (this project's format), a known folder checkpoint, or a config name (random
    weights unless `pretrained` names an official checkpoint file or a model folder to load).
    """
    folder = resolve_folder(name_or_dir)
    if folder is not None:
        return load_model_folder(folder, with_fusion=with_fusion, device=device)
    model = init_weights(MPLUG2Retrieval(get_config(str(name_or_dir)), with_fusion=with_fusion))
    if pretrained is not None:
        if is_model_folder(pretrained):
            source = load_model_folder(pretrained, with_fusion=with_fusion)
            model.load_state_dict(source.state_dict())
        else:
            state = read_checkpoint(pretrained, trust_pickle=trust_pickle)
            load_official_state_dict(model, state, allow_missing_heads=allow_missing_heads)
    return model.to(device).eval()


def vocab_for(name_or_dir: str | Path) -> Path | None:
    folder = resolve_folder(name_or_dir)
    return folder / VOCAB if folder is not None and (folder / VOCAB).is_file() else None
