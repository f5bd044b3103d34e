"""Freshly rendered training frames with their attributes as labels, for the label stage
(mplug2/train/label_stage.py): every frame new, so a tower can only get them right by seeing shape.

A frame is a moment of a training video as `make-synthetic` would draw it: a (colour, shape, motion) combination
never held out for the test split, a background, a size, the shape where its motion has taken it at a random time;
drawn at the training videos' frame size, so the model's own resize squashes it as it squashes decoded frames.
"""

from __future__ import annotations

import numpy as np

from indexer.synthetic.attributes import BACKGROUNDS, COLOURS, SHAPES, SIZES, ShapeSpec
from indexer.synthetic.generate import random_shape, training_triples
from indexer.synthetic.render import background, draw, trajectory
from mplug2.train.label_stage import UNLABELLED, LabelledFrames

FRAME_WIDTH, FRAME_HEIGHT = 320, 240  # the training videos' size (generate.py)
VALUES: dict[str, tuple[str, ...]] = {
    "shape": SHAPES,
    "colour": tuple(COLOURS),
    "background": tuple(BACKGROUNDS),
    "size": SIZES,
}


TRIPLES = training_triples()


def label_counts() -> dict[str, int]:
    return {name: len(values) for name, values in VALUES.items()}


def render_labelled_frames(count: int, rng: np.random.Generator) -> LabelledFrames:
    frames, labels = [], {name: [] for name in VALUES}
    for _ in range(count):
        spec = random_shape(TRIPLES, rng)
        backdrop = list(BACKGROUNDS)[int(rng.integers(len(BACKGROUNDS)))]
        canvas = background(backdrop, FRAME_WIDTH, FRAME_HEIGHT, rng)
        frames.append(draw(canvas, [(spec, trajectory(spec, rng))], float(rng.random())))
        for name, value in _attributes(spec, backdrop).items():
            labels[name].append(UNLABELLED if value is None else VALUES[name].index(value))
    return LabelledFrames(np.stack(frames), {name: np.array(found) for name, found in labels.items()})


def _attributes(spec: ShapeSpec, backdrop: str) -> dict[str, str | None]:
    return {"shape": spec.shape, "colour": spec.colour, "background": backdrop, "size": spec.size}
