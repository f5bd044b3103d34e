"""The benchmark's vocabulary: colours, shapes, motions, backgrounds and sizes, with the synonyms captions use."""

from __future__ import annotations

from dataclasses import dataclass

from indexer.synthetic.templates import TEMPLATE_WORDS

# RGB values chosen to stay distinct after yuv420p chroma subsampling and downscaling to ~64 px.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (225, 35, 35),
    "green": (40, 190, 60),
    "blue": (55, 100, 240),
    "yellow": (245, 225, 40),
    "purple": (160, 60, 210),
    "orange": (250, 140, 20),
    "white": (245, 245, 245),
    "pink": (250, 125, 195),
}
SHAPES = ("circle", "square", "triangle", "star", "hexagon", "diamond")
MOTIONS = ("left", "right", "up", "down", "growing", "shrinking", "rotating", "still")
DIRECTIONS = ("left", "right", "up", "down")
# Backgrounds contrast with every shape colour (checked in tests/synthetic).
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "black": (12, 12, 12),
    "grey": (115, 115, 115),
    "navy": (18, 22, 70),
    "brown": (85, 52, 28),
}
SIZES = ("small", "large")
POSITIONS = ("top left", "top", "top right", "left", "centre", "right", "bottom left", "bottom", "bottom right")

COLOUR_WORDS = {
    "red": ("red", "crimson", "scarlet"),
    "green": ("green", "emerald"),
    "blue": ("blue", "azure"),
    "yellow": ("yellow", "golden"),
    "purple": ("purple", "violet"),
    "orange": ("orange", "amber"),
    "white": ("white", "ivory"),
    "pink": ("pink", "rose"),
}
SHAPE_WORDS = {
    "circle": ("circle", "disc", "round shape"),
    "square": ("square", "block"),
    "triangle": ("triangle", "three sided shape"),
    "star": ("star", "five pointed star"),
    "hexagon": ("hexagon", "six sided shape"),
    "diamond": ("diamond", "rhombus"),
}
MOTION_PHRASES = {
    "left": ("moves to the left", "drifts leftwards", "slides left", "travels to the left"),
    "right": ("moves to the right", "drifts rightwards", "slides right", "travels to the right"),
    "up": ("moves up", "rises", "floats upwards", "climbs"),
    "down": ("moves down", "falls", "sinks downwards", "drops"),
    "growing": ("grows", "gets bigger", "expands", "swells"),
    "shrinking": ("shrinks", "gets smaller", "contracts", "dwindles"),
    "rotating": ("rotates", "spins", "turns around", "revolves"),
    "still": ("stays still", "does not move", "sits motionless", "remains in place"),
}
SIZE_WORDS = {"small": ("small", "little", "tiny"), "large": ("large", "big", "huge")}
BACKGROUND_WORDS = {"black": ("black",), "grey": ("grey", "gray"), "navy": ("navy", "dark blue"), "brown": ("brown",)}


# Motions that a video played backwards turns into each other; "rotating" and "still" stay what they are.
OPPOSITE_MOTIONS = (("left", "right"), ("up", "down"), ("growing", "shrinking"))


def direction_phrase_pairs() -> list[tuple[str, str]]:
    """Each direction phrase with its opposite ("moves up" / "moves down", "rises" / "falls"), paired by position in
    MOTION_PHRASES: what a time-reversed video's caption swaps."""
    return [
        pair
        for first, second in OPPOSITE_MOTIONS
        for pair in zip(MOTION_PHRASES[first], MOTION_PHRASES[second], strict=True)
    ]


@dataclass(frozen=True)
class ShapeSpec:
    """One shape in a video or image: what it is and what it does."""

    colour: str
    shape: str
    motion: str = "still"
    size: str | None = "small"  # None for growing/shrinking videos, whose size changes
    position: str | None = None  # images only

    def triple(self) -> tuple[str, str, str]:
        return (self.colour, self.shape, self.motion)


def valid_motion(shape: str, motion: str) -> bool:
    """A rotating circle looks still: never generate or caption one."""
    return not (shape == "circle" and motion == "rotating")


def is_held_out_triple(colour: str, shape: str, motion: str) -> bool:
    """Test-only (colour, shape, motion) triples: a Latin-square style quarter of all combinations, so every
    colour, shape and motion alone, and every pair of them, still appears in training."""
    c, s, m = list(COLOURS).index(colour), SHAPES.index(shape), MOTIONS.index(motion)
    return (c + 2 * s + 3 * m) % 4 == 0


def is_held_out_image_pair(colour: str, shape: str) -> bool:
    c, s = list(COLOURS).index(colour), SHAPES.index(shape)
    return (c + 2 * s) % 4 == 1


def caption_words() -> list[str]:
    """Every word a caption can contain (for building a vocabulary that covers every query)."""
    phrases = [w for words in COLOUR_WORDS.values() for w in words]
    phrases += [w for words in SHAPE_WORDS.values() for w in words]
    phrases += [w for words in MOTION_PHRASES.values() for w in words]
    phrases += [w for words in SIZE_WORDS.values() for w in words]
    phrases += [w for words in BACKGROUND_WORDS.values() for w in words]
    phrases += list(POSITIONS) + list(TEMPLATE_WORDS)
    return sorted({word for phrase in phrases for word in phrase.split()})


def attribute_word_groups() -> dict[str, dict[str, tuple[str, ...]]]:
    """The attributes a caption negative may change (`train --attribute-words`): shape, motion, size and an image's
    position (most of the bundled model's image misses put the shape in the wrong place). Colour and background are
    left out: the model learns them first from in-batch negatives, and "dark blue" (a background) holds "blue" (a
    colour). A bare "left" is a position; inside "slides left" the longer motion phrase wins."""
    positions = {position: (position,) for position in POSITIONS}
    return {"shape": SHAPE_WORDS, "motion": MOTION_PHRASES, "size": SIZE_WORDS, "position": positions}
