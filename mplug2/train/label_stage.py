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
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mplug2.model import MPLUG2Retrieval
from mplug2.train.checkpoints import read_checkpoint, write_checkpoint
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
    checkpoint: Path | None = None,
) -> LabelStageResult:
    """Train `model`'s visual tower in place on `source`'s labels. `values`: attribute → how many values it has.
    `on_log(step, accuracy)` every `log_every` steps: accuracy per attribute over those steps' batches.
    `checkpoint`: written every `checkpoint_every` steps; a run that finds one resumes from it exactly (the same
    frames, the same weights as a run never stopped)."""
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
    correct: dict[str, list[float]] = {name: [] for name in values}
    training = _Training(model, heads, optimizer, rng, correct)
    step, seconds_before = 0, 0.0
    if checkpoint is not None and (state := read_checkpoint(checkpoint)) is not None:
        step, seconds_before = training.restore(state, checkpoint, config)
        log.info("label stage resumed from %s at step %d", checkpoint, step)
    start = time.monotonic()
    model.train()
    while step < config.steps:
        step += 1
        batch = source(config.batch_size, rng)
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
        if checkpoint is not None and (step % config.checkpoint_every == 0 or step == config.steps):
            seconds = seconds_before + time.monotonic() - start
            write_checkpoint(training.state(step, seconds, config), checkpoint)
        if step % config.log_every == 0:
            log.info("label stage step %d/%d: loss %.3f", step, config.steps, loss.item())
            if on_log is not None:
                on_log(step, _recent(correct, config.log_every))
    model.eval()
    return LabelStageResult(step, seconds_before + time.monotonic() - start, _recent(correct, config.log_every))


@dataclass
class _Training:
    """What a label stage changes as it trains: what its checkpoint holds, besides the step and the time."""

    model: MPLUG2Retrieval
    heads: nn.ModuleDict
    optimizer: torch.optim.Optimizer
    rng: np.random.Generator  # the frames still to come
    correct: dict[str, list[float]]  # per attribute, each batch's accuracy

    def state(self, step: int, seconds: float, config: LabelStageConfig) -> dict[str, Any]:
        return {
            "step": step,
            "seconds": seconds,
            "config": asdict(config),
            "model": self.model.state_dict(),
            "heads": self.heads.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "frames_rng": self.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),  # dropout
            "correct": {name: hits[-config.log_every :] for name, hits in self.correct.items()},
        }

    def restore(self, state: dict[str, Any], path: Path, config: LabelStageConfig) -> tuple[int, float]:
        """Put the checkpoint's state in place; returns its step and the seconds trained before it. Any setting but
        the number of steps must match (a longer run may continue a shorter one)."""
        saved = {name: value for name, value in state["config"].items() if name != "steps"}
        asked = {name: value for name, value in asdict(config).items() if name != "steps"}
        saved["attributes"] = tuple(saved["attributes"])
        if saved != asked:
            differs = ", ".join(sorted(name for name in asked if saved.get(name) != asked[name]))
            raise ValueError(
                f"{path} is a checkpoint of a label stage with other settings ({differs}): delete it to "
                "start over, or give another output folder"
            )
        try:
            self.model.load_state_dict(state["model"])
            self.heads.load_state_dict(state["heads"])
        except RuntimeError as error:
            raise ValueError(
                f"{path} holds another model's weights (architecture or input size): delete it to start "
                f"over, or give another output folder ({error})"
            ) from None
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.bit_generator.state = state["frames_rng"]
        torch.set_rng_state(state["torch_rng"])
        for name, hits in state["correct"].items():
            self.correct[name].extend(hits)
        return state["step"], state["seconds"]


def _recent(correct: dict[str, list[float]], steps: int) -> dict[str, float]:
    return {name: float(np.mean(hits[-steps:])) for name, hits in correct.items() if hits}


def _schedule(step: int, config: LabelStageConfig) -> float:
    """Linear warm-up, then the full rate: shape is learnt late (after ~600 steps of a plateau, measured), and a
    decaying rate would slow exactly that part."""
    return min(1.0, step / max(1, config.warmup_steps))
