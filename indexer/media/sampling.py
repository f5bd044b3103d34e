"""Which frames of a span to decode: the official mPLUG-2 sampling, made safe for variable frame rates.

Official rule (mPLUG-2 `dataset/`, after Frozen-in-Time): split the `n` frames of the clip into `num_frames` equal
index segments, `np.linspace(0, n, num_frames + 1).astype(int)`; evaluation takes each segment's middle frame,
training a random one. That is exact for constant frame rate. For variable frame rate an index segment is not a time
segment, so there we split the span's time into equal segments and take the frame shown at each segment's middle (or
at a random time inside it).
"""

from __future__ import annotations

import itertools
from typing import Literal

import numpy as np

SampleMode = Literal["middle", "random"]


def official_segment_indices(
    num_available: int, num_frames: int, mode: SampleMode, rng: np.random.Generator
) -> list[int]:
    """Indices into `num_available` frames, one per equal index segment, exactly as the official loader."""
    if num_available <= 0:
        raise ValueError("no frames to sample from")
    bounds = np.linspace(0, num_available, num_frames + 1).astype(int)
    indices = []
    for low, high in itertools.pairwise(bounds):
        if mode == "middle":
            indices.append((low + high) // 2)
        else:
            indices.append(int(rng.integers(low, high)) if high > low else int(low))
    return [min(i, num_available - 1) for i in indices]


def is_constant_rate(timestamps: np.ndarray, tolerance: float = 0.05) -> bool:
    """Whether frame start times are evenly spaced (within `tolerance` of the median step)."""
    if len(timestamps) < 3:
        return True
    steps = np.diff(timestamps)
    median = float(np.median(steps))
    return median > 0 and bool(np.all(np.abs(steps - median) <= tolerance * median + 1e-6))


def select_frames(
    timestamps: np.ndarray,
    start: float,
    end: float | None,
    num_frames: int,
    mode: SampleMode = "middle",
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Frame indices (into `timestamps`, the frames' start times in seconds) to decode for the span [start, end)."""
    rng = rng or np.random.default_rng()
    timestamps = np.asarray(timestamps, dtype=np.float64)
    if len(timestamps) == 0:
        raise ValueError("no frames to sample from")
    end = float(timestamps[-1]) + 1e-6 if end is None else end
    in_span = np.flatnonzero((timestamps >= start - 1e-6) & (timestamps < end))
    if len(in_span) == 0:
        # A span shorter than one frame: the frame on screen at `start`.
        on_screen = max(int(np.searchsorted(timestamps, start, side="right")) - 1, 0)
        return np.full(num_frames, on_screen, dtype=np.int64)
    if is_constant_rate(timestamps[in_span]):
        picks = official_segment_indices(len(in_span), num_frames, mode, rng)
        return in_span[picks]
    edges = np.linspace(start, end, num_frames + 1)
    targets = (edges[:-1] + edges[1:]) / 2 if mode == "middle" else rng.uniform(edges[:-1], edges[1:])
    on_screen = np.searchsorted(timestamps, targets, side="right") - 1
    return np.clip(on_screen, in_span[0], in_span[-1]).astype(np.int64)
