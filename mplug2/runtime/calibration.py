"""Calibration data for post-training int8: real clips and captions turned into the graphs' inputs.

The caller supplies the material (an archive's first clips, or the demo media), never noise: int8 scales fitted
on noise misjudge real activations. Part of it is held out to measure the drift of the quantised graphs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mplug2.model import MPLUG2Retrieval

MIN_ITEMS = 4  # a quarter of them (at least 2) is held out for validation


@dataclass
class Calibration:
    """Model inputs: videos [N, T, 3, S, S], images [N, 3, S, S], token ids and mask [N, L]."""

    videos: torch.Tensor
    images: torch.Tensor
    input_ids: torch.Tensor
    attention_mask: torch.Tensor

    def __len__(self) -> int:
        return len(self.videos)


def graph_samples(model: MPLUG2Retrieval, calibration: Calibration, graph: str) -> list[tuple[torch.Tensor, ...]]:
    """One input tuple per item for `graph`. ITM pairs come from torch's own text and visual tokens: each caption
    with its clip and with the next clip (a match and a mismatch)."""
    n = len(calibration)
    if graph == "video":
        return [(calibration.videos[i : i + 1],) for i in range(n)]
    if graph == "image":
        return [(calibration.images[i : i + 1],) for i in range(n)]
    ids, mask = calibration.input_ids, calibration.attention_mask
    if graph == "text":
        return [(ids[i : i + 1], mask[i : i + 1]) for i in range(n)]
    with torch.inference_mode():
        text = model.encode_text(ids, mask)
        visual = torch.cat([model.encode_video(calibration.videos[i : i + 1]).tokens for i in range(n)])
    samples = []
    for i in range(n):
        for j in (i, (i + 1) % n):
            samples.append((text.tokens[i : i + 1], mask[i : i + 1], visual[j : j + 1]))
    return samples


def split(samples: list, holdout_fraction: float = 0.25) -> tuple[list, list]:
    """(calibration, validation): the last quarter (at least 2) is held out."""
    if len(samples) < MIN_ITEMS:
        raise ValueError(f"int8 calibration needs at least {MIN_ITEMS} clips; got {len(samples)}")
    held = max(2, int(len(samples) * holdout_fraction))
    return samples[:-held], samples[-held:]
