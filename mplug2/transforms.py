"""From uint8 frames to model input: squash resize (official interpolation) and CLIP normalisation.

All values come from the model's `PreprocessConfig`; callers never hard-code sizes, means or interpolations.
"""

from __future__ import annotations

import numpy as np
import torch

from mplug2.config import MPLUG2Config
from mplug2.resize import resize_frames


def to_model_input(frames: np.ndarray | torch.Tensor, config: MPLUG2Config, kind: str = "video") -> torch.Tensor:
    """uint8 `[..., H, W, 3]` (e.g. [B, T, H, W, 3] clips or [B, H, W, 3] images) → float `[..., 3, S, S]`.

    Frames not yet at the model's size are resized first (nearest for video, bicubic for images, as officially).
    """
    array = frames.numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    if array.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames, got {array.dtype}")
    size = config.image_size
    lead = array.shape[:-3]
    if array.shape[-3:-1] != (size, size):
        interpolation = (
            config.preprocess.video_interpolation if kind == "video" else config.preprocess.image_interpolation
        )
        flat = array.reshape(-1, *array.shape[-3:])
        array = resize_frames(flat, size, interpolation).reshape(*lead, size, size, 3)  # type: ignore[arg-type]
    tensor = torch.from_numpy(np.ascontiguousarray(array)).float().div_(255)
    mean = torch.tensor(config.preprocess.mean).view(3, 1, 1)
    std = torch.tensor(config.preprocess.std).view(3, 1, 1)
    return (tensor.movedim(-1, -3) - mean) / std  # [..., 3, S, S]
