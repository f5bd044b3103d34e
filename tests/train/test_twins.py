"""Time-reversed twins: captions swap their direction phrases, frames play backwards, and training takes them."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.synthetic.attributes import direction_phrase_pairs
from mplug2.train.data import Sample
from mplug2.train.twins import PhraseSwapper, add_time_reversed_twins

SWAPPER = PhraseSwapper(direction_phrase_pairs())


@pytest.mark.parametrize(
    ("caption", "expected"),
    [
        ("a red star moves to the left on a black background", "a red star moves to the right on a black background"),
        ("a disc rises while a square shrinks on grey", "a disc falls while a square grows on grey"),
        ("the hexagon drifts rightwards", "the hexagon drifts leftwards"),
        ("a star moves up", "a star moves down"),
    ],
)
def test_every_direction_phrase_swaps_once(caption: str, expected: str) -> None:
    assert SWAPPER.swap(caption) == expected
    assert SWAPPER.swap(expected) == caption


def test_captions_without_a_direction_get_no_twin() -> None:
    assert SWAPPER.swap("a red circle rotates on black") is None
    assert SWAPPER.swap("a blue square stays still") is None
    assert SWAPPER.swap("an upward-looking leftist") is None  # whole words only


def test_twins_play_backwards_with_their_own_item_ids() -> None:
    frames = np.arange(4 * 2 * 2 * 3, dtype=np.uint8).reshape(4, 2, 2, 3)
    samples = [
        Sample(frames, "a star rises", 3, "video"),
        Sample(frames, "a star spins", 4, "video"),
        Sample(frames[:1], "a star in the top left", 5, "image"),
    ]
    out = add_time_reversed_twins(samples, SWAPPER, 1.0, np.random.default_rng(0), 1000)
    assert out[:3] == samples and len(out) == 4, "only the video naming a direction gets a twin"
    twin = out[3]
    assert twin.caption == "a star falls" and twin.item_id == 1003 and twin.kind == "video"
    np.testing.assert_array_equal(twin.frames, frames[::-1])
    assert add_time_reversed_twins(samples, SWAPPER, 0.0, np.random.default_rng(0), 1000) == samples
