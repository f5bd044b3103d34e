"""The retrieval losses of mPLUG (v1): image-text contrastive (ITC) and image-text matching on hard negatives (ITM).

Items that share an id (several captions of one video) count as positives for each other, in ITC targets and when
sampling hard negatives, as the official code does with `idx`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def positive_targets(query_ids: torch.Tensor, key_ids: torch.Tensor) -> torch.Tensor:
    """[Q, K] targets: 1/n over the n keys sharing the query's item id."""
    return spread(query_ids[:, None] == key_ids[None, :])


def spread(positives: torch.Tensor) -> torch.Tensor:
    """[Q, K] bool → targets: 1/n over each row's n positives."""
    same = positives.float()
    return same / same.sum(dim=1, keepdim=True).clamp(min=1)


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return -(F.log_softmax(logits, dim=1) * targets).sum(dim=1).mean()


def itc_loss(
    visual_feat: torch.Tensor,
    text_feat: torch.Tensor,
    temp: torch.Tensor,
    item_ids: torch.Tensor,
    visual_keys: torch.Tensor | None = None,
    text_keys: torch.Tensor | None = None,
    key_ids: torch.Tensor | None = None,
    distill_v2t: torch.Tensor | None = None,
    distill_t2v: torch.Tensor | None = None,
    alpha: float = 0.0,
    negative_text: torch.Tensor | None = None,
    positives: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ITC over the keys (the batch, or the batch plus the momentum queue).

    visual_feat/text_feat [B, E] (normalised, with gradients); visual_keys/text_keys [K, E] (defaults: the batch);
    distill_*: the momentum model's similarities [B, K] for soft targets weighted by `alpha`.
    negative_text [N, E]: texts that match no visual (captions with an attribute changed), extra keys of the
    visual-to-text side only.
    positives [B, B] bool: which visual each text fits (partial captions fit several), in place of item ids; only
    when the keys are the batch.
    Returns (loss, sim_v2t, sim_t2v) with sims [B, K] already divided by temp (without the negative texts).
    """
    visual_keys = visual_feat if visual_keys is None else visual_keys
    text_keys = text_feat if text_keys is None else text_keys
    key_ids = item_ids if key_ids is None else key_ids
    sim_v2t = visual_feat @ text_keys.T / temp
    sim_t2v = text_feat @ visual_keys.T / temp
    if positives is None:
        targets_v2t = targets_t2v = positive_targets(item_ids, key_ids)
    elif len(visual_keys) != len(visual_feat) or len(text_keys) != len(text_feat):
        raise ValueError("positives by mask need the batch as the keys (no momentum queue)")
    else:
        targets_t2v, targets_v2t = spread(positives), spread(positives.T)
    if alpha > 0 and distill_v2t is not None and distill_t2v is not None:
        targets_v2t = alpha * F.softmax(distill_v2t, dim=1) + (1 - alpha) * targets_v2t
        targets_t2v = alpha * F.softmax(distill_t2v, dim=1) + (1 - alpha) * targets_t2v
    logits_v2t = sim_v2t
    if negative_text is not None:
        logits_v2t = torch.cat([sim_v2t, visual_feat @ negative_text.T / temp], dim=1)
        targets_v2t = F.pad(targets_v2t, (0, len(negative_text)))
    loss = (soft_cross_entropy(logits_v2t, targets_v2t) + soft_cross_entropy(sim_t2v, targets_t2v)) / 2
    return loss, sim_v2t, sim_t2v


def sample_hard_negatives(
    sim: torch.Tensor,
    query_ids: torch.Tensor,
    key_ids: torch.Tensor,
    generator: torch.Generator | None = None,
    random_share: float = 0.0,
    positives: torch.Tensor | None = None,
) -> torch.Tensor:
    """For each query row of `sim` [Q, K], one key index drawn with probability softmax(sim) over the keys that are
    not positives (never a key sharing the query's item id). A row with no negative at all draws uniformly from
    the keys (possible only in a degenerate batch of one item).

    `random_share` of the rows draw uniformly among their negatives instead. Why: at a low temperature softmax(sim)
    is nearly the nearest neighbour, which differs from the positive in exactly what the visual tokens cannot show
    yet; on such negatives alone the ITM loss stays at a constant guess. Easy negatives teach it to match first.

    `positives` [Q, K] bool, when given, says which keys are positives in place of the ids."""
    weights = F.softmax(sim.detach().float(), dim=1).cpu() + 1e-5  # drawn on the CPU: one seeded generator anywhere
    same = query_ids[:, None] == key_ids[None, :] if positives is None else positives
    weights = weights.masked_fill(same.cpu(), 0.0)
    if random_share > 0:
        uniform = torch.rand(len(weights), generator=generator) < random_share
        weights[uniform] = (weights[uniform] > 0).float()
    empty = weights.sum(dim=1) == 0
    weights[empty] = 1.0
    return torch.multinomial(weights, 1, generator=generator).squeeze(1).to(sim.device)


def itm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, labels)


def separation_loss(anchors: torch.Tensor, others: torch.Tensor, margin: float) -> torch.Tensor:
    """Mean hinge over rows of [N, E] unit vectors that must not coincide: each pair whose cosine is above `margin`
    pays the chord distance it lacks, max(0, |a - b| at the margin - |a - b|), with |a - b| = sqrt(2 - 2 cos).

    Why: when neither tower encodes an attribute (a caption's shape or direction words, a video's time order), ITC
    gives neither a gradient to start: the text side learns the attribute only if the videos already differ in it,
    and the other way round. Measured on the bundled model, captions that differ only in their motion phrase had
    cosine 0.998, and a video and its time-reversed copy 0.9999, after 2,100 steps with reversed twins in every
    batch. Keeping such pairs apart within one tower breaks that symmetry.

    Why the chord and not the cosine itself: between unit vectors the cosine's gradient, b - cos(a, b) a, vanishes
    as they coincide, exactly where these pairs sit; a hinge on the cosine at margin 0.8 left both at 0.999 after 200
    steps. The chord's gradient has unit length however close the pair is."""
    if len(anchors) == 0:
        return anchors.new_zeros(())
    chord = torch.sqrt((2 - 2 * (anchors * others).sum(dim=-1)).clamp(min=1e-12))
    return F.relu(math.sqrt(2 - 2 * margin) - chord).mean()
