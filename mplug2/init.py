"""Starting weights: the official random initialisation, or plain CLIP + BERT weights as the official training does.

CLIP (OpenAI JIT archive, OpenAI state dict, or open_clip checkpoint: all name the vision tower `visual.*` the same
way) initialises the VideoFormer: the 2-D patch kernel becomes the (1, p, p) 3-D one and the position embedding is
resized to the model's grid; the temporal adapters start as the identity. BERT (Hugging Face format) initialises the
text encoder layer for layer, and each fusion layer i from BERT layer i, as `FusionModel.from_pretrained` does;
cross-attention, latents and the retrieval heads start random.
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import torch
from torch import nn

from mplug2.checkpoint import CheckpointError, resize_position_embedding, unwrap_state_dict
from mplug2.model import MPLUG2Retrieval
from mplug2.video_encoder import LocalTemporal

log = logging.getLogger(__name__)


def init_weights(model: MPLUG2Retrieval, std: float = 0.02) -> MPLUG2Retrieval:
    """The official initialisation: truncated normal (std 0.02) for linear, conv and embedding weights, zero biases,
    unit LayerNorms, identity temporal adapters; latents ~ N(0, 1); temperature 0.07."""
    for module in model.modules():
        if isinstance(module, nn.Linear | nn.Conv2d | nn.Conv3d | nn.Embedding):
            nn.init.trunc_normal_(module.weight, std=std)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.MultiheadAttention):
            nn.init.trunc_normal_(module.in_proj_weight, std=std)
            nn.init.zeros_(module.in_proj_bias)
    for module in model.modules():
        if isinstance(module, LocalTemporal):
            nn.init.zeros_(module.up_proj.weight)
            nn.init.zeros_(module.up_proj.bias)
    visual = model.visual_encoder.visual
    if visual.config.has_patch_kernel and visual.config.has_conv_stem:
        # The convolutions beside the patch kernel start silent: a patch model gains them unchanged.
        nn.init.zeros_(visual.stem.proj.weight)
        nn.init.zeros_(visual.stem.proj.bias)
    nn.init.trunc_normal_(visual.class_embedding, std=std)
    nn.init.trunc_normal_(visual.positional_embedding, std=std)
    with torch.no_grad():
        model.text_encoder.encoder.layer[model.config.text.first_uni_layer].latents.normal_()
        model.temp.fill_(0.07)
    return model


def read_any_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Weights from a TorchScript archive, a safetensors file or a torch.save'd dict (weights only)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    if _is_torchscript(path):  # OpenAI's released CLIP files
        return torch.jit.load(str(path), map_location="cpu").state_dict()
    return unwrap_state_dict(torch.load(path, map_location="cpu", weights_only=True), path)


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any("/code/" in name for name in archive.namelist())


def load_clip_vision(model: MPLUG2Retrieval, clip_path: str | Path) -> int:
    """Copy a CLIP ViT's vision tower into the VideoFormer. Returns the number of tensors copied."""
    if model.config.vision.stem != "patch":
        raise CheckpointError(
            f"{clip_path}: CLIP weights fit the official patch stem only, not a {model.config.vision.stem!r} stem"
        )
    source = {k.removeprefix("module."): v for k, v in read_any_state_dict(clip_path).items()}
    visual = {k[len("visual.") :]: v for k, v in source.items() if k.startswith("visual.")}
    if not visual:
        raise CheckpointError(f"{clip_path}: no `visual.*` weights: not a CLIP ViT checkpoint")
    target = model.visual_encoder.visual.state_dict()
    loaded = {}
    for key, tensor in visual.items():
        if key == "conv1.weight":
            tensor = tensor.unsqueeze(2)  # [D, 3, p, p] → [D, 3, 1, p, p]
        elif key == "positional_embedding" and tensor.shape != target[key].shape:
            tensor = resize_position_embedding(tensor, target[key].shape[0])
        if key not in target:
            continue  # proj and the like
        if tensor.shape != target[key].shape:
            raise CheckpointError(
                f"{clip_path}: {key} is {tuple(tensor.shape)}, the model needs "
                f"{tuple(target[key].shape)}: pick the CLIP variant matching the config"
            )
        loaded[key] = tensor
    missing = [k for k in target if k not in loaded and ".lmhra" not in k]
    if missing:
        raise CheckpointError(f"{clip_path} lacks vision weights: {missing[:5]}")
    model.visual_encoder.visual.load_state_dict(loaded, strict=False)
    return len(loaded)


def load_bert(model: MPLUG2Retrieval, bert_path: str | Path) -> int:
    """Copy Hugging Face BERT weights into the text encoder and the fusion layers. Returns the tensors copied."""
    source = {}
    for key, tensor in read_any_state_dict(bert_path).items():
        key = key.removeprefix("module.").removeprefix("bert.").replace(".gamma", ".weight").replace(".beta", ".bias")
        source[key] = tensor
    if not any(k.startswith("encoder.layer.") for k in source):
        raise CheckpointError(f"{bert_path}: no `encoder.layer.*` weights: not a BERT checkpoint")
    copied = 0
    text_state = model.text_encoder.state_dict()
    text_updates = {k: v for k, v in source.items() if k in text_state and v.shape == text_state[k].shape}
    wrong = [k for k, v in source.items() if k in text_state and v.shape != text_state[k].shape]
    if wrong:
        raise CheckpointError(f"{bert_path}: shapes differ from the config for {wrong[:3]} (vocab or hidden size)")
    model.text_encoder.load_state_dict(text_updates, strict=False)
    copied += len(text_updates)
    if model.with_fusion:
        fusion_state = model.fusion_encoder.state_dict()
        fusion_updates = {k: v for k, v in source.items() if k in fusion_state and "crossattention" not in k}
        model.fusion_encoder.load_state_dict(fusion_updates, strict=False)
        copied += len(fusion_updates)
    log.info("initialised %d tensors from %s", copied, bert_path)
    return copied
