"""Loading official mPLUG-2 checkpoints: unwrap, rename, drop what retrieval never uses, report, load.

The remapping is a pure function `remap_official(state_dict, model_keys)` driven by two tables: `RENAMES`
(pre-training checkpoints keep an extra `bert.` level) and `IGNORED` (every group of keys a released checkpoint
carries that retrieval does not use; the one place such keys are dropped). Whatever is neither kept nor ignored is
reported as unexpected. Missing retrieval heads are an error unless the caller explicitly accepts random heads.
"""

from __future__ import annotations

import logging
import pickle
import re
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

RENAMES: tuple[tuple[str, str], ...] = (
    ("text_encoder.bert.", "text_encoder."),
    ("fusion_encoder.bert.", "fusion_encoder."),
)

IGNORED: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (group, re.compile(pattern))
    for group, pattern in (
        ("momentum copies", r"^\w+_m(\.|$)"),
        ("text decoder", r"^text_decoder\."),
        ("ITC queues", r"^(image|video|text|idx)_queue$|^queue_ptr$"),
        (
            "unused CLIP text tower",
            r"^visual_encoder\.(token_embedding|positional_embedding|transformer|ln_final"
            r"|text_projection|logit_scale)(\.|$)",
        ),
        ("unused CLIP projection", r"^visual_encoder\.visual\.proj$"),
        ("unused fusion embeddings", r"^fusion_encoder\.embeddings\."),
        ("unused vision FFN of the universal layers", r"\.(intermediate_vision|output_vision)\."),
        ("poolers", r"^(text|fusion)_encoder\.pooler\."),
        ("fusion layers that never run", r"^fusion_encoder\.encoder\.layer\.\d+\."),
        ("fusion tower (model built without it)", r"^(fusion_encoder\.|itm_head\.)"),
    )
)

HEADS = ("vision_proj.", "text_proj.", "itm_head.", "temp")
# Buffers that checkpoints from newer transformers versions leave out; the model's own values are right.
OPTIONAL = re.compile(r"embeddings\.position_ids$")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used as asked; the message says what to do."""


@dataclass
class LoadReport:
    loaded: int = 0
    ignored: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    resized: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"loaded {self.loaded} tensors"]
        lines += [f"ignored {count} ({group})" for group, count in self.ignored.items()]
        if self.resized:
            lines.append(f"resized {', '.join(self.resized)}")
        if self.missing:
            lines.append(f"missing {len(self.missing)}: {', '.join(_group_names(self.missing))}")
        if self.unexpected:
            lines.append(f"unexpected {len(self.unexpected)}: {', '.join(_group_names(self.unexpected))}")
        return "; ".join(lines)


def _group_names(keys: list[str]) -> list[str]:
    groups: dict[str, int] = defaultdict(int)
    for key in keys:
        groups[re.sub(r"\.\d+(\.|$)", r".*\1", key).rsplit(".", 1)[0]] += 1
    return [f"{name} ({count})" if count > 1 else name for name, count in sorted(groups.items())]


def read_checkpoint(path: str | Path, trust_pickle: bool = False) -> dict[str, torch.Tensor]:
    """The state dict inside an official checkpoint file (`model` or `module` wrappers unwrapped).

    Released files may carry pickled Python objects (optimizer state, configs): those load only with
    `trust_pickle=True`, which runs code from the file, so only for files from a source you trust.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (pickle.UnpicklingError, RuntimeError) as error:
        if not trust_pickle:
            raise CheckpointError(
                f"{path} holds pickled Python objects besides the weights ({str(error).splitlines()[0][:160]}). "
                "Loading them runs code from the file: if it comes from a source you trust, pass --trust-pickle "
                "(trust_pickle=True)."
            ) from None
        warnings.warn(f"loading {path} with weights_only=False: this executes code stored in the file", stacklevel=2)
        content = torch.load(path, map_location="cpu", weights_only=False)
    return unwrap_state_dict(content, path)


def unwrap_state_dict(content: object, path: str | Path = "checkpoint") -> dict[str, torch.Tensor]:
    if isinstance(content, dict):
        for wrapper in ("model", "module", "state_dict"):
            if isinstance(content.get(wrapper), dict):
                return unwrap_state_dict(content[wrapper], path)
        tensors = {k: v for k, v in content.items() if isinstance(v, torch.Tensor)}
        if tensors:
            return tensors
    raise CheckpointError(f"{path}: no state dict found (expected a dict of tensors, maybe under 'model' or 'module')")


def remap_official(
    state_dict: dict[str, torch.Tensor], model_keys: set[str], fusion_layer_ids: range | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, list[str]], list[str]]:
    """Rename official keys to the model's; returns (kept, ignored keys by group, unexpected keys)."""
    kept: dict[str, torch.Tensor] = {}
    ignored: dict[str, list[str]] = defaultdict(list)
    unexpected: list[str] = []
    for key, tensor in state_dict.items():
        name = key[len("module.") :] if key.startswith("module.") else key
        for old, new in RENAMES:
            if name.startswith(old):
                name = new + name[len(old) :]
        if name in model_keys:
            kept[name] = tensor
            continue
        group = ignored_group(name, fusion_layer_ids)
        if group is None:
            unexpected.append(key)
        else:
            ignored[group].append(key)
    return kept, dict(ignored), unexpected


def ignored_group(name: str, fusion_layer_ids: range | None = None) -> str | None:
    """The IGNORED group a (renamed) key belongs to, or None."""
    for group, pattern in IGNORED:
        if not pattern.search(name):
            continue
        if group == "fusion layers that never run" and fusion_layer_ids is not None:
            layer = int(name.split(".")[3])
            if layer in fusion_layer_ids:
                continue  # a fusion layer the model runs, missing from the model only if built without fusion
        return group
    return None


# The ViT's position embedding: the one weight whose shape follows the input size.
POSITION_EMBEDDING_KEY = "visual_encoder.visual.positional_embedding"


def resize_position_embedding(embedding: torch.Tensor, tokens: int) -> torch.Tensor:
    """[1 + g*g, D] → [tokens, D]: the grid resized bilinearly, the CLS row kept (as the official code does)."""
    cls, grid = embedding[:1], embedding[1:]
    old, new = round(grid.shape[0] ** 0.5), round((tokens - 1) ** 0.5)
    grid = grid.reshape(1, old, old, -1).permute(0, 3, 1, 2).float()  # [1, D, g, g]
    grid = F.interpolate(grid, size=(new, new), mode="bilinear", align_corners=False)
    return torch.cat([cls, grid.permute(0, 2, 3, 1).reshape(new * new, -1).to(embedding.dtype)])


def load_official_state_dict(
    model: nn.Module, state_dict: dict[str, torch.Tensor], allow_missing_heads: bool = False
) -> LoadReport:
    """Load an official state dict into an `MPLUG2Retrieval`; raise `CheckpointError` on anything unsafe."""
    target = model.state_dict()
    kept, ignored, unexpected = remap_official(state_dict, set(target), model.config.text.fusion_layer_ids)
    report = LoadReport(ignored={group: len(keys) for group, keys in ignored.items()}, unexpected=unexpected)
    if POSITION_EMBEDDING_KEY in kept and kept[POSITION_EMBEDDING_KEY].shape != target[POSITION_EMBEDDING_KEY].shape:
        kept[POSITION_EMBEDDING_KEY] = resize_position_embedding(
            kept[POSITION_EMBEDDING_KEY], target[POSITION_EMBEDDING_KEY].shape[0]
        )
        report.resized.append(f"{POSITION_EMBEDDING_KEY} to {tuple(target[POSITION_EMBEDDING_KEY].shape)}")
    mismatched = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(target[k].shape)}"
        for k, v in kept.items()
        if v.shape != target[k].shape
    ]
    if mismatched:
        raise CheckpointError("the checkpoint does not fit this model config: " + "; ".join(mismatched[:5]))
    report.missing = sorted(k for k in target if k not in kept and not OPTIONAL.search(k))
    missing_heads = [k for k in report.missing if k.startswith(HEADS)]
    if missing_heads and not allow_missing_heads:
        raise CheckpointError(
            f"the checkpoint has no retrieval heads ({', '.join(_group_names(missing_heads))}): its ITC/ITM scores "
            "would be random. Fine-tune it first (`mplug2-search train --model ...`), or pass allow_missing_heads="
            "True / --allow-missing-heads to start them from random weights on purpose."
        )
    others = [k for k in report.missing if not k.startswith(HEADS)]
    if others:
        raise CheckpointError(f"the checkpoint lacks {len(others)} weights: {', '.join(_group_names(others))}")
    if missing_heads:
        warnings.warn(f"retrieval heads start from random weights: {', '.join(missing_heads)}", stacklevel=2)
    model.load_state_dict(kept, strict=False)
    report.loaded = len(kept)
    if unexpected:
        log.warning("unexpected keys in checkpoint: %s", ", ".join(_group_names(unexpected)))
    log.info("%s", report.summary())
    return report
