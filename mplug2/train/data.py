"""What the trainer needs from a dataset: samples of uint8 frames with a caption and an item id, in batches of one
kind (video clips or images, since their frame counts differ)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass
class Sample:
    frames: np.ndarray  # uint8 [T, H, W, 3]; images have T = 1
    caption: str
    item_id: int  # captions of one video share it: they are positives for each other
    kind: str  # "video" or "image"


class TrainingSet(Protocol):
    def batches(self, epoch: int, batch_size: int, seed: int) -> list[list[int]]:
        """The epoch's batches of sample indices, each of one kind, in a seeded order."""

    def load(self, index: int, rng: np.random.Generator) -> Sample:
        """Sample `index`; `rng` drives its randomness (which frame of each segment, which caption)."""


def batch_order(kinds: list[str], epoch: int, batch_size: int, seed: int) -> list[list[int]]:
    """Shuffle each kind's samples, cut them into full batches, and interleave the batches, all from (seed, epoch)."""
    rng = np.random.default_rng([seed, epoch])
    batches: list[list[int]] = []
    for kind in sorted(set(kinds)):
        indices = np.array([i for i, k in enumerate(kinds) if k == kind])
        indices = indices[rng.permutation(len(indices))]
        batches += [indices[i : i + batch_size].tolist() for i in range(0, len(indices) - batch_size + 1, batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]
