"""The retrieval losses against hand computation, and the hard-negative sampler's one rule."""

import math

import pytest
import torch
import torch.nn.functional as F

from mplug2.train.losses import itc_loss, positive_targets, sample_hard_negatives, separation_loss


def test_itc_is_the_mean_of_both_directions_cross_entropy() -> None:
    visual = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    text = torch.tensor([[0.6, 0.8], [0.8, 0.6]])
    temp = torch.tensor(0.5)
    loss, sim_v2t, _ = itc_loss(visual, text, temp, torch.tensor([0, 1]))
    # v2t logits: [[1.2, 1.6], [1.6, 1.2]]; the right text is column i.
    row0 = -math.log(math.exp(1.2) / (math.exp(1.2) + math.exp(1.6)))
    expected = (2 * row0 + 2 * row0) / 4  # both rows alike, both directions alike here
    assert torch.allclose(sim_v2t, torch.tensor([[1.2, 1.6], [1.6, 1.2]]))
    assert abs(loss.item() - expected) < 1e-6


def test_captions_of_one_video_share_the_target() -> None:
    targets = positive_targets(torch.tensor([7, 7, 3]), torch.tensor([7, 7, 3]))
    assert torch.equal(targets, torch.tensor([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]))


def test_hard_negatives_never_pick_a_positive_and_prefer_the_confusable() -> None:
    ids = torch.tensor([0, 0, 1, 2, 3])
    sim = torch.tensor([[9.0, 9.0, 5.0, 0.0, 0.0]] * 5)
    generator = torch.Generator().manual_seed(0)
    picks = torch.stack([sample_hard_negatives(sim, ids, ids, generator) for _ in range(200)])
    assert not ((picks[:, 0] == 0) | (picks[:, 0] == 1)).any(), "item 0's other caption is a positive"
    assert (picks[:, 0] == 2).float().mean() > 0.9, "the most similar negative is drawn most"


def test_separation_hinges_only_pairs_closer_than_the_margin() -> None:
    a = F.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.0]]), dim=-1)
    b = F.normalize(torch.tensor([[1.0, 0.1], [0.0, 1.0]]), dim=-1)  # nearly the same; orthogonal
    cosine = float((a[0] * b[0]).sum())
    expected = (math.sqrt(2 - 2 * 0.5) - math.sqrt(2 - 2 * cosine)) / 2
    assert separation_loss(a, b, 0.5).item() == pytest.approx(expected)
    assert separation_loss(a[1:], b[1:], 0.5).item() == 0.0
    assert separation_loss(a[:0], b[:0], 0.5).item() == 0.0


def test_separation_keeps_pushing_pairs_that_nearly_coincide() -> None:
    """The gradient that breaks a tower's blindness must not vanish as the pair coincides (the cosine's does)."""
    direction = F.normalize(torch.tensor([[1.0, 0.0, 0.0]]), dim=-1)
    for gap in (1e-1, 1e-3):
        raw = torch.tensor([[1.0, gap, 0.0]], requires_grad=True)
        separation_loss(direction, F.normalize(raw, dim=-1), 0.8).backward()
        assert raw.grad is not None and raw.grad.norm() > 0.5, f"gap {gap}: gradient {raw.grad}"
