"""Captions from templates and synonyms. Training and test use different sentence templates (the test split reads
fresh sentences made of words the training captions use)."""

from __future__ import annotations

import numpy as np

from indexer.synthetic.attributes import (
    BACKGROUND_WORDS,
    COLOUR_WORDS,
    MOTION_PHRASES,
    SHAPE_WORDS,
    SIZE_WORDS,
    ShapeSpec,
)
from indexer.synthetic.templates import IMAGE_TEMPLATES, PAIR_TEMPLATE, VIDEO_TEMPLATES


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def describe(spec: ShapeSpec, rng: np.random.Generator) -> tuple[str, str]:
    """(noun phrase, motion phrase) for one shape, with synonyms drawn from `rng`."""
    words = [_pick(rng, SIZE_WORDS[spec.size])] if spec.size else []
    words += [_pick(rng, COLOUR_WORDS[spec.colour]), _pick(rng, SHAPE_WORDS[spec.shape])]
    return " ".join(words), _pick(rng, MOTION_PHRASES[spec.motion])


def video_caption(shapes: list[ShapeSpec], background: str, split: str, rng: np.random.Generator) -> str:
    bg = _pick(rng, BACKGROUND_WORDS[background])
    thing, motion = describe(shapes[0], rng)
    if len(shapes) == 2:
        thing2, motion2 = describe(shapes[1], rng)
        return PAIR_TEMPLATE.format(thing=thing, motion=motion, thing2=thing2, motion2=motion2, bg=bg)
    return _pick(rng, VIDEO_TEMPLATES[split]).format(thing=thing, motion=motion, bg=bg)


def image_caption(spec: ShapeSpec, background: str, split: str, rng: np.random.Generator) -> str:
    thing, _ = describe(spec, rng)
    bg = _pick(rng, BACKGROUND_WORDS[background])
    return _pick(rng, IMAGE_TEMPLATES[split]).format(thing=thing, position=spec.position, bg=bg)
