"""Encode stage: decoded clips gathered into batches of one kind and run through the dual encoder.

Only the vision side is needed (no fusion tower is loaded for indexing). Visual tokens come back only when the
feature store keeps some form of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mplug2.bundle import ModelBundle


@dataclass
class PendingClip:
    """A decoded clip with its row already in the catalog (`pending`), waiting for its vectors."""

    media_id: int
    clip_id: int
    kind: str  # video | image
    frames: np.ndarray  # uint8 [T, H, W, 3]


class Batcher:
    """Clips queued per kind until a batch is full."""

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self._buffers: dict[str, list[PendingClip]] = {"video": [], "image": []}

    def add(self, clip: PendingClip) -> list[PendingClip] | None:
        """Queue a clip; returns a full batch when this clip completes one."""
        buffer = self._buffers[clip.kind]
        buffer.append(clip)
        if len(buffer) >= self.batch_size:
            self._buffers[clip.kind] = []
            return buffer
        return None

    def drain(self) -> list[list[PendingClip]]:
        """Whatever is left, as one batch per kind."""
        batches = [buffer for buffer in self._buffers.values() if buffer]
        self._buffers = {"video": [], "image": []}
        return batches


def encode_batch(
    bundle: ModelBundle, clips: list[PendingClip], keep_tokens: bool
) -> tuple[np.ndarray, list[np.ndarray] | None]:
    """ITC vectors [N, E] of a batch of one kind, and each clip's visual tokens when `keep_tokens`."""
    frames = np.stack([clip.frames for clip in clips])  # [N, T, H, W, 3]
    output = bundle.encode_videos(frames) if clips[0].kind == "video" else bundle.encode_images(frames[:, 0])
    tokens = list(output.tokens.cpu().numpy()) if keep_tokens else None
    return output.feat.cpu().numpy(), tokens
