"""Caption negatives: one attribute phrase swapped for another value's, never for a synonym, whole words only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from indexer.synthetic.attributes import MOTION_PHRASES, SHAPE_WORDS, attribute_word_groups
from mplug2.train.caption_negatives import AttributeSwapper, read_attribute_words
from mplug2.train.losses import itc_loss

SWAPPER = AttributeSwapper(attribute_word_groups())


def test_a_negative_changes_one_attribute_to_another_value() -> None:
    rng = np.random.default_rng(0)
    caption = "a small red five pointed star rises on a black background"
    seen = set()
    for _ in range(200):
        negative = SWAPPER.negative(caption, rng)
        assert negative is not None and negative != caption
        words = negative.split()
        assert "red" in words and negative.endswith("on a black background"), "colour and background stay"
        changed = [
            group
            for group, phrase in (("size", "small"), ("shape", "five pointed star"), ("motion", "rises"))
            if phrase not in negative
        ]
        assert len(changed) == 1, negative
        seen.add(changed[0])
        if changed == ["shape"]:
            assert not any(p in negative for p in SHAPE_WORDS["star"]), "a synonym is not a negative"
    assert seen == {"size", "shape", "motion"}


def test_an_image_caption_can_change_position_and_a_motion_stays_a_motion() -> None:
    rng = np.random.default_rng(2)
    caption = "the bottom right of a navy image holds a large orange circle"
    negatives = {SWAPPER.negative(caption, rng) for _ in range(100)}
    moved = {n for n in negatives if "large orange circle" in n and "bottom right" not in n}
    assert moved and all(
        n.startswith("the ") and n.endswith(" of a navy image holds a large orange circle") for n in moved
    )
    motions = {phrase for phrases in MOTION_PHRASES.values() for phrase in phrases}
    for _ in range(50):
        negative = SWAPPER.negative("a red disc slides left", rng)
        assert negative is not None
        if negative.startswith("a red disc "):  # the motion changed, to another motion: "left" is no position here
            assert negative.removeprefix("a red disc ") in motions - {"slides left"}, negative
        else:
            assert negative.endswith(" slides left") and "disc" not in negative, negative


def test_whole_words_and_longest_phrases() -> None:
    rng = np.random.default_rng(1)
    assert SWAPPER.negative("a red blob on a navy background", rng) is None
    assert SWAPPER.negative("it gets bigger", rng) not in (None, "it gets bigger")  # the phrase, not "big"
    swapper = AttributeSwapper({"size": {"small": ["small"], "large": ["big"]}})
    assert swapper.negative("a bigger thing", rng) is None


def test_bad_groups_are_refused() -> None:
    with pytest.raises(ValueError, match="two values"):
        AttributeSwapper({"shape": {"circle": ["circle"]}})
    with pytest.raises(ValueError, match="names two"):
        AttributeSwapper({"shape": {"circle": ["round"], "disc": ["round"]}})
    with pytest.raises(ValueError, match="JSON object"):
        read_attribute_words({"shape": ["circle", "square"]})


def test_negative_texts_are_keys_of_the_visual_side_only() -> None:
    torch.manual_seed(0)
    visual, text = torch.nn.functional.normalize(torch.randn(2, 2, 8), dim=-1)
    ids, temp = torch.arange(2), torch.tensor(0.1)
    base, sim_v2t, sim_t2v = itc_loss(visual, text, temp, ids)
    # A negative text equal to the visual's own features is the hardest negative there is: the loss must rise.
    harder, sim_v2t_n, sim_t2v_n = itc_loss(visual, text, temp, ids, negative_text=visual)
    assert harder > base
    assert torch.equal(sim_v2t, sim_v2t_n) and torch.equal(sim_t2v, sim_t2v_n), "the returned sims are the batch's"
