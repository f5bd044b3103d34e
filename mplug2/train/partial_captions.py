"""Partial captions: a sample's caption cut down to the phrases of some attributes ("a small red star rises on a grey
background" → "star"), matched by every video of those attribute values.

Why: on the synthetic benchmark a linear probe read shape from the bundled model's video ITC vector at 0.20 (chance
0.17) while it read colour at 0.998, and a caption and the same caption with its shape changed had cosine 0.90: neither
tower encodes shape. A full caption is told apart from the batch's other captions by colour, motion and background
first, and a caption negative with only the shape changed pushes the text side without ever requiring the video
vector to hold shape in a direction the text can find. A caption that names only the shape can be matched through
shape alone. It fits every video of that shape in the batch, so its positives are read from attribute values (each
video's own, full caption), not from item ids: the others of its shape are no negatives.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch

from mplug2.train.caption_negatives import AttributeSwapper
from mplug2.train.data import Sample


class PartialCaptions:
    """Cuts captions down to the phrases of the attribute groups `keep` (names of `words`' groups)."""

    def __init__(self, words: AttributeSwapper, keep: Sequence[str]) -> None:
        unknown = set(keep) - set(words.groups)
        if not keep or unknown:
            known = ", ".join(words.groups)
            raise ValueError(f"partial captions keep attribute groups of the attribute words ({known}); got {keep}")
        self.words, self.keep = words, frozenset(keep)

    def cut(self, caption: str) -> str | None:
        """The phrases of the kept groups in the caption's order, or None when it names none of them."""
        phrases = [phrase for phrase, group, _ in self.words.named(caption) if group in self.keep]
        return " ".join(phrases) or None

    def apply(self, samples: list[Sample], share: float, rng: np.random.Generator) -> list[Sample]:
        """`samples` with a random `share` of their captions cut down; a cut sample keeps its caption as
        `full_caption`."""
        result = []
        for sample in samples:
            cut = self.cut(sample.caption) if rng.random() < share else None
            full = sample.full_caption or sample.caption
            result.append(sample if cut is None else dataclasses.replace(sample, caption=cut, full_caption=full))
        return result

    def positives(self, samples: list[Sample]) -> torch.Tensor | None:
        """[caption, visual] bool: which of the batch's visuals each caption fits; None when no caption is cut (then
        item and match ids decide alone, as without partial captions).

        A full caption fits the visuals of its match id; a cut one also every visual whose own caption names the
        same values of the groups it names (a visual whose caption is silent on a group is no positive: unknown)."""
        if all(sample.full_caption is None for sample in samples):
            return None
        matches = torch.tensor([sample.match for sample in samples])
        positives = matches[:, None] == matches[None, :]
        visual_values = [self.words.values(sample.full_caption or sample.caption) for sample in samples]
        for row, sample in enumerate(samples):
            if sample.full_caption is None:
                continue
            named = self.words.values(sample.caption).items()
            for column, values in enumerate(visual_values):
                if named <= values.items():
                    positives[row, column] = True
        return positives
