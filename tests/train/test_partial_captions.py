"""Partial captions: a caption cut down to some attributes' phrases fits every video of those values, and only those."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from indexer.synthetic.attributes import attribute_word_groups, direction_phrase_pairs
from mplug2.train.caption_negatives import AttributeSwapper
from mplug2.train.data import Sample
from mplug2.train.losses import itc_loss, sample_hard_negatives
from mplug2.train.partial_captions import PartialCaptions
from mplug2.train.twins import PhraseSwapper, add_time_reversed_twins

WORDS = AttributeSwapper(attribute_word_groups())
FRAMES = np.zeros((2, 8, 8, 3), np.uint8)


def sample(caption: str, item: int, full: str | None = None) -> Sample:
    return Sample(FRAMES, caption, item, "video", None, full)


def test_a_cut_keeps_the_named_groups_phrases_in_order() -> None:
    caption = "a small red five pointed star rises on a black background"
    assert PartialCaptions(WORDS, ["shape"]).cut(caption) == "five pointed star"
    assert PartialCaptions(WORDS, ["shape", "size"]).cut(caption) == "small five pointed star"
    assert PartialCaptions(WORDS, ["shape"]).cut("a red blob on a black background") is None
    with pytest.raises(ValueError, match="shape, motion, size, position"):
        PartialCaptions(WORDS, ["colour"])


def test_a_share_of_captions_is_cut_and_keeps_its_source() -> None:
    partial = PartialCaptions(WORDS, ["shape"])
    samples = [sample(f"a red hexagon rises number {i}", i) for i in range(200)]
    cut = partial.apply(samples, 0.25, np.random.default_rng(0))
    changed = [s for s in cut if s.full_caption is not None]
    assert 30 < len(changed) < 70
    assert all(s.caption == "hexagon" and s.full_caption.startswith("a red hexagon rises") for s in changed)
    assert [s.item_id for s in cut] == list(range(200)), "same items, same order"


def test_a_cut_caption_fits_every_video_of_its_shape_and_only_those() -> None:
    samples = [
        sample("hexagon", 0, "a red hexagon rises"),
        sample("a blue six sided shape falls", 1),  # a synonym: the same shape
        sample("a green circle spins", 2),
        sample("a red blob spins", 3),  # names no shape: not known to be a hexagon
        sample("a red circle rises", 4),
    ]
    positives = PartialCaptions(WORDS, ["shape"]).positives(samples)
    assert positives is not None
    assert positives[0].tolist() == [True, True, False, False, False]
    assert positives[1:].tolist() == torch.eye(5, dtype=torch.bool)[1:].tolist(), "full captions fit their own video"
    assert PartialCaptions(WORDS, ["shape"]).positives(samples[1:]) is None, "no cut caption: ids decide"


def test_itc_targets_spread_over_every_video_a_caption_fits() -> None:
    torch.manual_seed(0)
    visual = torch.nn.functional.normalize(torch.randn(3, 8), dim=-1)
    text = torch.nn.functional.normalize(torch.randn(3, 8), dim=-1)
    temp = torch.tensor(0.1)
    ids = torch.tensor([0, 1, 2])
    by_ids, _, _ = itc_loss(visual, text, temp, ids)
    by_mask, _, _ = itc_loss(visual, text, temp, ids, positives=torch.eye(3, dtype=torch.bool))
    assert by_mask.item() == pytest.approx(by_ids.item())
    fits = torch.tensor([[True, True, False], [False, True, False], [False, False, True]])
    loss, sim_v2t, sim_t2v = itc_loss(visual, text, temp, ids, positives=fits)
    log_t2v, log_v2t = sim_t2v.log_softmax(dim=1), sim_v2t.log_softmax(dim=1)
    t2v = -(0.5 * (log_t2v[0, 0] + log_t2v[0, 1]) + log_t2v[1, 1] + log_t2v[2, 2]) / 3
    # visual 1 is fitted by captions 0 and 1
    v2t = -(log_v2t[0, 0] + 0.5 * (log_v2t[1, 0] + log_v2t[1, 1]) + log_v2t[2, 2]) / 3
    assert loss.item() == pytest.approx(((t2v + v2t) / 2).item(), rel=1e-6)
    with pytest.raises(ValueError, match="queue"):
        itc_loss(visual, text, temp, ids, visual_keys=torch.cat([visual, visual]), positives=fits)


def test_hard_negatives_never_pick_a_video_the_caption_fits() -> None:
    sim = torch.tensor([[0.0, 9.0, 9.0, 0.0]])  # the nearest keys are ones the caption fits
    fits = torch.tensor([[True, True, True, False]])
    ids = torch.arange(4)
    generator = torch.Generator().manual_seed(0)
    picks = {int(sample_hard_negatives(sim, ids[:1], ids, generator, positives=fits)) for _ in range(50)}
    assert picks == {3}


def test_a_twin_of_a_cut_caption_swaps_its_source_too() -> None:
    phrases = PhraseSwapper(direction_phrase_pairs())
    cut = PartialCaptions(WORDS, ["shape", "motion"]).apply(
        [sample("a red star rises", 7)], 1.0, np.random.default_rng(0)
    )
    assert cut[0].caption == "star rises"
    twins = add_time_reversed_twins(cut, phrases, 1.0, np.random.default_rng(0), 1000)
    assert (twins[1].caption, twins[1].full_caption) == ("star falls", "a red star falls")
