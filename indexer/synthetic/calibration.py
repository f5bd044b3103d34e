"""Calibration material for an int8 runtime: clips and captions drawn exactly as the demo's media are (the synthetic
generator's training plan, seed 0), rendered straight to frames: real scenes with real captions, never noise."""

from __future__ import annotations

import numpy as np

from indexer.synthetic.captions import video_caption
from indexer.synthetic.generate import _rng, plan
from indexer.synthetic.render import render_video

CALIBRATION_CLIPS = 24
SIDE = 256  # rendered a little larger than the model's input, so the model's own resize runs as on real media


def calibration_clips(num_frames: int, count: int = CALIBRATION_CLIPS, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """uint8 clips [count, num_frames, SIDE, SIDE, 3] and one caption each."""
    clips, captions = [], []
    for item in plan(seed, count, 0, 0, 0).videos[:count]:
        rng = _rng(seed, item.split, item.index)
        clips.append(np.stack(list(render_video(list(item.shapes), item.background, SIDE, SIDE, num_frames, rng))))
        captions.append(video_caption(list(item.shapes), item.background, item.split, rng))
    return np.stack(clips), captions
