"""One factory: `create_model(name or folder)`; `list_models()` names what it can build."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import torch

from mplug2.checkpoint import (
    POSITION_EMBEDDING_KEY,
    load_official_state_dict,
    read_checkpoint,
    resize_position_embedding,
)
from mplug2.config import MPLUG2Config
from mplug2.folder import VOCAB, is_model_folder, load_model_folder
from mplug2.init import init_weights
from mplug2.model import MPLUG2Retrieval
from mplug2.pretrained import BERT_VOCAB, KNOWN_CHECKPOINTS, PretrainedCfg, fetched_folder

log = logging.getLogger(__name__)
CONFIG_DIR = Path(__file__).parent / "model_configs"
BERT_VOCAB_SIZE = 30522


def list_models() -> list[str]:
    """Architecture configs, then known checkpoints."""
    configs = sorted(path.stem for path in CONFIG_DIR.glob("*.json"))
    return configs + sorted(name for name in KNOWN_CHECKPOINTS if name not in configs)


def get_config(name: str) -> MPLUG2Config:
    """A config in model_configs/ by name, or any config JSON file by path."""
    path = Path(name) if name.endswith(".json") else CONFIG_DIR / f"{name}.json"
    if not path.is_file():
        raise ValueError(f"unknown model config {name!r}; known: {', '.join(list_models())}")
    return MPLUG2Config.from_json(path)


def known_config(cfg: PretrainedCfg) -> MPLUG2Config:
    """A known checkpoint's architecture with the preprocessing its weights were trained with."""
    config = get_config(cfg.architecture)
    preprocess = dataclasses.replace(config.preprocess, **cfg.preprocess)
    return dataclasses.replace(config, name=cfg.name, preprocess=preprocess)


def resolve_folder(name_or_dir: str | Path) -> Path | None:
    """The model folder a name or path refers to, if any: a folder path, a bundled folder checkpoint, or a known
    official checkpoint that `fetch-checkpoint` has converted."""
    if is_model_folder(name_or_dir):
        return Path(name_or_dir)
    known = KNOWN_CHECKPOINTS.get(str(name_or_dir))
    if known is None:
        return None
    folder = fetched_folder(known)
    if known.format == "folder" and not is_model_folder(folder):
        raise FileNotFoundError(f"the model {known.name} should be at {folder}, which is not a model folder")
    return folder if is_model_folder(folder) else None


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

    `name_or_dir`: a model folder (this project's format), a known checkpoint (its fetched folder; before the fetch,
    its architecture and preprocessing), or a config name. Without a folder the weights are random unless
    `pretrained` names an official checkpoint file or a model folder to load.
    """
    folder = resolve_folder(name_or_dir)
    if folder is not None:
        return load_model_folder(folder, with_fusion=with_fusion, device=device)
    known = KNOWN_CHECKPOINTS.get(str(name_or_dir))
    config = known_config(known) if known is not None else get_config(str(name_or_dir))
    if known is not None and pretrained is None:
        log.warning(
            "%s is not fetched: random weights. Run `mplug2-search fetch-checkpoint %s`", known.name, known.name
        )
    model = init_weights(MPLUG2Retrieval(config, with_fusion=with_fusion))
    if pretrained is not None:
        if is_model_folder(pretrained):
            source = load_model_folder(pretrained, with_fusion=with_fusion)
            model.load_state_dict(source.state_dict())
        else:
            state = read_checkpoint(pretrained, trust_pickle=trust_pickle)
            load_official_state_dict(model, state, allow_missing_heads=allow_missing_heads)
    return model.to(device).eval()


def at_image_size(model: MPLUG2Retrieval, image_size: int) -> MPLUG2Retrieval:
    """`model`'s weights for another input size: the ViT's position grid resized bilinearly (what fine-tuning at a
    higher resolution starts from), every other weight as it is. The same model when the size is already its own."""
    if image_size == model.config.image_size:
        return model
    patch = model.config.vision.patch_size
    if image_size % patch:
        raise ValueError(f"image size {image_size} is not a multiple of the ViT's patch size {patch}")
    config = dataclasses.replace(model.config, vision=dataclasses.replace(model.config.vision, image_size=image_size))
    resized = MPLUG2Retrieval(config, with_fusion=model.with_fusion)
    state = model.state_dict()
    tokens = resized.state_dict()[POSITION_EMBEDDING_KEY].shape[0]
    state[POSITION_EMBEDDING_KEY] = resize_position_embedding(state[POSITION_EMBEDDING_KEY], tokens)
    return _loaded_like(resized, state, model)


def with_conv_branch(model: MPLUG2Retrieval) -> MPLUG2Retrieval:
    """A patch-stem model with convolutions beside its patch kernel (stem "patch+conv"), their projection at zero:
    it computes what `model` does until fine-tuning trains the convolutions (which, in a tower from random weights,
    learnt shape far faster than a patch kernel)."""
    stem = model.config.vision.stem
    if stem != "patch":
        raise ValueError(f"{model.config.name} has a {stem!r} stem; a conv branch joins 'patch' only")
    config = dataclasses.replace(model.config, vision=dataclasses.replace(model.config.vision, stem="patch+conv"))
    widened = init_weights(MPLUG2Retrieval(config, with_fusion=model.with_fusion))
    # Every weight but the branch's comes from `model` (strict: a key it lacks would be a bug, not a new branch).
    return _loaded_like(widened, {**widened.state_dict(), **model.state_dict()}, model)


def with_visual_tower(model: MPLUG2Retrieval, donor: MPLUG2Retrieval) -> MPLUG2Retrieval:
    """`model` with `donor`'s visual tower (the VideoFormer: its architecture and weights) in place of its own; the
    text tower, universal layers, projections and fusion encoder stay `model`'s. What a visual tower trained apart
    (the label stage) starts from before it learns to meet `model`'s text embeddings (`train --text-lr-scale 0`)."""
    # The tower's width is what the layers after it read (visn_fc, the universal layers): only it must agree.
    if donor.config.vision.width != model.config.vision.width:
        widths = f"{donor.config.vision.width} vs {model.config.vision.width}"
        raise ValueError(f"{donor.config.name}'s visual tower is not as wide as {model.config.name}'s ({widths})")
    config = dataclasses.replace(model.config, vision=donor.config.vision)
    grafted = MPLUG2Retrieval(config, with_fusion=model.with_fusion)
    tower = "visual_encoder."
    state = {key: value for key, value in model.state_dict().items() if not key.startswith(tower)}
    state |= {key: value for key, value in donor.state_dict().items() if key.startswith(tower)}
    return _loaded_like(grafted, state, model)


def _loaded_like(rebuilt: MPLUG2Retrieval, state: dict[str, torch.Tensor], model: MPLUG2Retrieval) -> MPLUG2Retrieval:
    """`rebuilt` holding `state`, on `model`'s device and in its train/eval mode."""
    rebuilt.load_state_dict(state)
    return rebuilt.to(next(model.parameters()).device).train(model.training)


def vocab_for(name_or_dir: str | Path) -> Path | None:
    """The vocabulary file of a model folder, or bert-base-uncased's (shipped) for an architecture built for it."""
    folder = resolve_folder(name_or_dir)
    if folder is not None:
        return folder / VOCAB if (folder / VOCAB).is_file() else None
    known = KNOWN_CHECKPOINTS.get(str(name_or_dir))
    if known is not None and known.vocab:
        return Path(known.vocab)
    try:
        config = known_config(known) if known is not None else get_config(str(name_or_dir))
    except ValueError:
        return None
    return BERT_VOCAB if config.text.vocab_size >= BERT_VOCAB_SIZE else None
