"""A stage for the visual tower alone: name the labelled attributes of single frames, one linear head per attribute
on the ITC vector, cross-entropy summed over attributes (the heads are thrown away after).

Why: a small tower trained from random weights by ITC + ITM on a few thousand captioned videos learns what is cheap
(colour, motion) and barely learns shape: in-batch negatives seldom differ by shape alone, and the few videos that
share everything else can be told apart by memorising them. A label per frame asks for shape in every sample, and a
stream of freshly rendered frames leaves nothing to memorise. This is what pretraining on labelled images gives a
real tower before the contrastive stage (mPLUG-2 starts from a pretrained CLIP ViT).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mplug2.model import MPLUG2Retrieval
from mplug2.train.config import LabelStageConfig
from mplug2.transforms import to_model_input

log = logging.getLogger(__name__)

UNLABELLED = -1  # a frame that shows no value of an attribute (e.g. no size for a growing shape)


@dataclass
class LabelledFrames:
    frames: np.ndarray  # uint8 [N, H, W, 3]
    labels: dict[str, np.ndarray]  # attribute → int [N], an index into that attribute's values, or UNLABELLED


# A source of batches: given the batch size and a generator, the next batch.
FrameSource = Callable[[int, np.random.Generator], LabelledFrames]


@dataclass
class LabelStageResult:
    steps: int
    seconds: float
    accuracy: dict[str, float]  # per attribute, over the last `log_every` steps' training batches


def visual_parameters(model: MPLUG2Retrieval) -> list[nn.Parameter]:
    """What the ITC vector of a frame depends on: the VideoFormer, the universal layers (vision mode) and the vision
    projection. Text-only weights, the fusion encoder and the ITM head are left as they are."""
    text_only = ("text_proj", "fusion_encoder", "itm_head", "temp")
    return [p for name, p in model.named_parameters() if not name.startswith(text_only)]


def train_on_labels(
    model: MPLUG2Retrieval,
    source: FrameSource,
    values: dict[str, int],
    config: LabelStageConfig,
    on_log: Callable[[int, dict[str, float]], None] | None = None,
) -> LabelStageResult:
    """Train `model`'s visual tower in place on `source`'s labels. `values`: attribute → how many values it has.
    `on_log(step, accuracy)` every `log_every` steps: accuracy per attribute over those steps' batches."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    heads = nn.ModuleDict({name: nn.Linear(model.config.embed_dim, count) for name, count in values.items()})
    optimizer = torch.optim.AdamW(
        [
            {"params": visual_parameters(model), "lr": config.lr},
            {"params": heads.parameters(), "lr": config.head_lr},
        ],
        weight_decay=config.weight_decay,
    )
    base_rates = [group["lr"] for group in optimizer.param_groups]
    correct = {name: [] for name in values}
    start, step = time.monotonic(), 0
    model.train()
    for step, batch in enumerate(_batches(source, config.batch_size, rng), start=1):
        for group, rate in zip(optimizer.param_groups, base_rates, strict=True):
            group["lr"] = rate * _schedule(step, config)
        video = to_model_input(batch.frames[:, None], model.config, "video")  # one-frame clips
        feat = model.encode_video(video).feat
        loss = feat.new_zeros(())
        for name, head in heads.items():
            target = torch.as_tensor(batch.labels[name], dtype=torch.long)
            logits = head(feat) / config.temperature
            loss = loss + F.cross_entropy(logits, target, ignore_index=UNLABELLED)
            labelled = target != UNLABELLED
            correct[name].append(float((logits.argmax(1)[labelled] == target[labelled]).float().mean()))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % config.log_every == 0:
            log.info("label stage step %d/%d: loss %.3f", step, config.steps, loss.item())
            if on_log is not None:
                on_log(step, _recent(correct, config.log_every))
        if step >= config.steps:
            break
    model.eval()
    return LabelStageResult(step, time.monotonic() - start, _recent(correct, config.log_every))


def _recent(correct: dict[str, list[float]], steps: int) -> dict[str, float]:
    return {name: float(np.mean(hits[-steps:])) for name, hits in correct.items() if hits}


def _batches(source: FrameSource, size: int, rng: np.random.Generator) -> Iterator[LabelledFrames]:
    while True:
        yield source(size, rng)


def _schedule(step: int, config: LabelStageConfig) -> float:
    """Linear warm-up, then the full rate: shape is learnt late (after ~600 steps of a plateau, measured), and a
    decaying rate would slow exactly that part."""
    return min(1.0, step / max(1, config.warmup_steps))
