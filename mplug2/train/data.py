"""What the trainer needs from a dataset: samples of uint8 frames with a caption and an item id, in batches of one
kind (video clips or images, since their frame counts differ)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass
class Sample:
    frames: np.ndarray  # uint8 [T, H, W, 3]; images have T = 1
    caption: str
    item_id: int  # captions of one video share it: they are positives for each other
    kind: str  # "video" or "image"
    # Items that answer each other's captions share it (annotations giving identical attributes): never each other's
    # negatives. None: the item alone. Why: a synthetic set repeats descriptions (2724 of the 4000 training videos of
    # seed 0 share all their attributes with another), and those are exactly the nearest neighbours that hard batches
    # and mined negatives pick, so without it the hardest "negatives" are positives.
    match_id: int | None = None
    # A partial caption's source (mplug2/train/partial_captions.py): the item's own caption, which says what the
    # item shows; None: `caption` is that caption.
    full_caption: str | None = None

    @property
    def match(self) -> int:
        """The id that decides positives: `match_id`, or the item's own id."""
        return self.item_id if self.match_id is None else self.match_id


class TrainingSet(Protocol):
    def __len__(self) -> int:
        """The number of samples (an item with several captions gives several)."""

    def batches(
        self,
        epoch: int,
        batch_size: int,
        seed: int,
        hard_fraction: float = 0.0,
        features: np.ndarray | None = None,
        item_ids: Sequence[int] | None = None,
    ) -> list[list[int]]:
        """The epoch's batches of sample indices, each of one kind, in a seeded order; `hard_fraction` of the samples
        go into `neighbour_batches` by `features` (one row per sample)."""

    def load(self, index: int, rng: np.random.Generator) -> Sample:
        """Sample `index`; `rng` drives its randomness (which frame of each segment, which caption)."""


def neighbour_batches(
    features: np.ndarray, item_ids: Sequence[int], indices: np.ndarray, batch_size: int, rng: np.random.Generator
) -> list[list[int]]:
    """Batches of neighbours among `indices` by `features` (unit rows), one item (or match id) at most once in each.

    In-batch ITC negatives drawn at random differ from the positive in many ways at once, so a model can separate
    them by the easiest cues (on the synthetic benchmark: colour and background) and never learn the rest (shape,
    motion). A batch grown from a random sample and the unused samples nearest to it in the model's own embedding
    holds negatives the model cannot yet tell apart: the hard negatives that teach the rest."""
    pool = features[indices]
    unused = np.ones(len(indices), bool)
    batches: list[list[int]] = []
    for start in rng.permutation(len(indices)):
        if not unused[start]:
            continue
        if unused.sum() < batch_size:
            break
        similarity = pool @ pool[start]
        similarity[~unused] = -np.inf
        chosen: list[int] = []
        items: set[int] = set()
        for candidate in np.argsort(-similarity, kind="stable")[: int(unused.sum())]:
            item = item_ids[indices[candidate]]
            if item not in items:
                chosen.append(int(candidate))
                items.add(item)
                if len(chosen) == batch_size:
                    break
        if len(chosen) < batch_size:
            break  # the unused samples are too few distinct items
        unused[chosen] = False
        batches.append(sorted(indices[chosen].tolist()))
    return batches


def batch_order(
    kinds: list[str],
    epoch: int,
    batch_size: int,
    seed: int,
    hard_fraction: float = 0.0,
    features: np.ndarray | None = None,
    item_ids: Sequence[int] | None = None,
) -> list[list[int]]:
    """Shuffle each kind's samples, cut them into full batches, and interleave the batches, all from (seed, epoch).

    With `hard_fraction` > 0 (which needs per-sample `features` and `item_ids`), that share of each kind's samples
    form `neighbour_batches` instead."""
    if hard_fraction > 0 and (features is None or item_ids is None):
        raise ValueError("hard batches need per-sample features and item ids")
    rng = np.random.default_rng([seed, epoch])
    batches: list[list[int]] = []
    for kind in sorted(set(kinds)):
        indices = np.array([i for i, k in enumerate(kinds) if k == kind])
        indices = indices[rng.permutation(len(indices))]
        hard = int(len(indices) * hard_fraction) // batch_size * batch_size
        if hard:
            batches += neighbour_batches(features, item_ids, indices[:hard], batch_size, rng)
        rest = indices[hard:]
        batches += [rest[i : i + batch_size].tolist() for i in range(0, len(rest) - batch_size + 1, batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]
