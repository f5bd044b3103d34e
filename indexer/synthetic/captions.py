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

VIDEO_TEMPLATES = {
    "train": (
        "a {thing} {motion} on a {bg} background",
        "{thing} {motion} against a {bg} backdrop",
        "on a {bg} background a {thing} {motion}",
        "there is a {thing} that {motion} over {bg}",
        "video of a {thing} which {motion} on {bg}",
    ),
    "test": (
        "the {thing} {motion} with a {bg} background behind it",
        "a {bg} scene where a {thing} {motion}",
        "in front of a {bg} background a {thing} {motion}",
    ),
}
PAIR_TEMPLATE = "a {thing} {motion} while a {thing2} {motion2} on a {bg} background"
IMAGE_TEMPLATES = {
    "train": (
        "a {thing} in the {position} on a {bg} background",
        "photo of a {thing} at the {position} against {bg}",
        "a {bg} picture with a {thing} in the {position}",
    ),
    "test": ("the {position} of a {bg} image holds a {thing}", "a {thing} placed in the {position} over {bg}"),
}
TEMPLATE_WORDS = {
    word
    for templates in (*VIDEO_TEMPLATES.values(), *IMAGE_TEMPLATES.values(), (PAIR_TEMPLATE,))
    for template in templates
    for word in template.replace("{", " {").split()
    if not word.startswith("{")
}


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
