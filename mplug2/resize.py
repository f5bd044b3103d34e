"""Squash-resize frames exactly as the official eval transforms do, with numpy and PIL only.

Video frames: torchvision `Resize((s, s), NEAREST)` on uint8 tensors, i.e. torch's legacy nearest rule
`src = min(floor(dst * (in / out)), in - 1)` with the scale in float32. Images: PIL bicubic `Image.resize`.
No torch import here: the decode worker processes call this module and must stay light.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Interpolation = Literal["nearest", "bilinear", "bicubic"]

_PIL_FILTERS = ("bilinear", "bicubic")


def nearest_source_indices(in_size: int, out_size: int) -> np.ndarray:
    """The source row/column each output row/column copies under torch's legacy `nearest` interpolation."""
    scale = np.float32(in_size) / np.float32(out_size)
    positions = np.floor(np.arange(out_size, dtype=np.float32) * scale).astype(np.int64)
    return np.minimum(positions, in_size - 1)


def resize_frames(frames: np.ndarray, size: int, interpolation: Interpolation) -> np.ndarray:
    """Squash-resize uint8 frames `[T, H, W, 3]` to `[T, size, size, 3]` (no crop, aspect not kept)."""
    if frames.ndim != 4 or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames [T, H, W, C], got {frames.dtype} {frames.shape}")
    _, height, width, _ = frames.shape
    if (height, width) == (size, size):
        return frames
    if interpolation == "nearest":
        rows = nearest_source_indices(height, size)
        cols = nearest_source_indices(width, size)
        return np.ascontiguousarray(frames[:, rows][:, :, cols])
    if interpolation not in _PIL_FILTERS:
        raise ValueError(f"unknown interpolation {interpolation!r}: use nearest, bilinear or bicubic")
    # PIL is imported only here: a text query (which loads this module through the model bundle) never needs it.
    from PIL import Image

    resample = Image.Resampling[interpolation.upper()]
    return np.stack([np.asarray(Image.fromarray(frame).resize((size, size), resample)) for frame in frames])
