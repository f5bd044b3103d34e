"""The recipe's stage specs as `scripts/bundled_model.py` takes them: the --motion-stages, --sharpen and --fresh-seeds
words, parsed (with errors that say what to give) and, for the card, written back."""

from __future__ import annotations

import argparse
from typing import NamedTuple


class SharpenStage(NamedTuple):
    """One sharpen stage, from the previous stage's model with a fresh warm-up and schedule."""

    size: int  # input size in px (a multiple of 8)
    steps: int
    lr: float
    # The attribute groups its caption negatives swap (attribute_word_groups' names); empty: all of them.
    attributes: tuple[str, ...] = ()


def motion_stages(text: str) -> tuple[tuple[int, float], ...]:
    """'1200:0.5,900:1.0' → ((1200, 0.5), (900, 1.0)); 'none' → ()."""
    if text.strip().lower() == "none":
        return ()
    try:
        stages = tuple((int(steps), float(share)) for steps, share in (part.split(":") for part in text.split(",")))
    except ValueError:
        message = f"{text!r}: give STEPS:SHARE[,STEPS:SHARE...], e.g. 900:1.0, or none"
        raise argparse.ArgumentTypeError(message) from None
    if any(steps <= 0 or not 0 <= share <= 1 for steps, share in stages):
        raise argparse.ArgumentTypeError(f"{text!r}: steps must be positive and shares between 0 and 1")
    return stages


def sharpen(text: str) -> tuple[SharpenStage, ...]:
    """'96:800:3e-4,96:900:2e-4:shape+size' → (SharpenStage(96, 800, 0.0003), SharpenStage(96, 900, 0.0002,
    ('shape', 'size'))); 'none' → ()."""
    if text.strip().lower() == "none":
        return ()
    try:
        stages = tuple(_sharpen_stage(*part.split(":")) for part in text.split(","))
    except (TypeError, ValueError):
        message = f"{text!r}: give SIZE:STEPS:LR[:ATTRIBUTE+...][,...], e.g. 96:800:3e-4 or 96:800:2e-4:shape, or none"
        raise argparse.ArgumentTypeError(message) from None
    if any(stage.size <= 0 or stage.steps <= 0 or stage.lr <= 0 for stage in stages):
        raise argparse.ArgumentTypeError(f"{text!r}: the size, the steps and the learning rate must be positive")
    from indexer.synthetic.attributes import attribute_word_groups

    groups = attribute_word_groups()
    unknown = {name for stage in stages for name in stage.attributes} - set(groups)
    if unknown:
        known = "+".join(groups)
        raise argparse.ArgumentTypeError(f"{text!r}: no attribute group {', '.join(sorted(unknown))} (groups: {known})")
    return stages


def _sharpen_stage(size: str, steps: str, lr: str, attributes: str = "") -> SharpenStage:
    return SharpenStage(int(size), int(steps), float(lr), tuple(name for name in attributes.split("+") if name))


def seeds(text: str) -> tuple[int, ...]:
    """'11,13' → (11, 13); 'none' → ()."""
    if text.strip().lower() == "none":
        return ()
    try:
        return tuple(int(seed) for seed in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give SEED[,SEED...], e.g. 11,13, or none") from None


def sharpen_text(stage: SharpenStage) -> str:
    """The --sharpen words for one stage (the inverse of `sharpen` for it)."""
    words = [str(stage.size), str(stage.steps), f"{stage.lr:g}"]
    return ":".join(words + (["+".join(stage.attributes)] if stage.attributes else []))
