"""Time-reversed twins: a training video played backwards, captioned with the opposite direction.

A model that averages its frames (or only learns what one frame shows) cannot tell "moves to the left" from "moves
to the right": both captions fit the same set of frames. Playing a clip backwards turns its direction into the
opposite one, so each clip whose caption names a direction gives a second, correct pair for free: the reversed frames
with the caption's direction phrases swapped ("rises" ↔ "falls", "grows" ↔ "shrinks"). Put in the same batch as its
original, the twin is the hardest possible negative for it: the same colours, shapes and background, only time order
differs. This is what makes the temporal adapters (`lmhra`), which start as the identity, learn direction.

Captions without a known direction phrase get no twin: reversed, "a person sits down" would be "stands up", and a
recipe can only swap phrases it has been told about.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import numpy as np

from mplug2.train.data import Sample


class PhraseSwapper:
    """Swaps every listed phrase for its opposite in one pass (so "left" → "right" is never swapped back)."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self.opposite: dict[str, str] = {}
        for first, second in pairs:
            self.opposite[first.lower()] = second.lower()
            self.opposite[second.lower()] = first.lower()
        # Longest first, so "moves to the left" wins over a shorter phrase inside it; whole words only.
        alternatives = sorted(self.opposite, key=len, reverse=True)
        self._pattern = re.compile(r"\b(" + "|".join(map(re.escape, alternatives)) + r")\b") if alternatives else None

    def swap(self, caption: str) -> str | None:
        """The caption with every direction phrase swapped, or None when it names no direction."""
        if self._pattern is None:
            return None
        swapped, count = self._pattern.subn(lambda match: self.opposite[match.group(1)], caption.lower())
        return swapped if count else None


def add_time_reversed_twins(
    samples: list[Sample], swapper: PhraseSwapper, share: float, rng: np.random.Generator, id_offset: int
) -> list[Sample]:
    """`samples` plus, for a random `share` of its videos that name a direction, their time-reversed twins.

    A twin's item and match ids are its original's plus `id_offset` (larger than any real item id), so a twin is a
    positive only for itself, and every other twin of the same item (or of an item it matches)."""
    twins = []
    for sample in samples:
        if sample.kind != "video" or len(sample.frames) < 2 or rng.random() >= share:
            continue
        caption = swapper.swap(sample.caption)
        if caption is not None:
            frames = np.ascontiguousarray(sample.frames[::-1])
            full = swapper.swap(sample.full_caption) if sample.full_caption else None  # a partial caption's source
            twin = Sample(frames, caption, sample.item_id + id_offset, "video", sample.match + id_offset, full)
            twins.append(twin)
    return samples + twins


def read_phrase_pairs(pairs: Mapping[str, str] | Iterable[Iterable[str]]) -> list[tuple[str, str]]:
    """Pairs from a JSON object {"rises": "falls", ...} or a list [["rises", "falls"], ...]."""
    rows = pairs.items() if isinstance(pairs, Mapping) else pairs
    result = []
    for row in rows:
        first, second = tuple(row)
        result.append((str(first), str(second)))
    return result
