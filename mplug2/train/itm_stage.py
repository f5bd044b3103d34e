"""A second training stage for the fusion encoder and ITM head alone, on cached encoder outputs.

Why: trained jointly from random weights, ITM is the slow learner. Its hard negatives are only informative once ITC
has learnt, and each joint step spends most of its time in the encoders. With the encoders frozen, their outputs
(visual tokens, text tokens, ITC vectors) are computed once; a step then runs only the fusion layers, many times
faster, on hard negatives drawn from the now-meaningful ITC similarities (as in the joint stage). The encoders, and
so every indexed vector, stay exactly as they were.

What the re-ranker must learn is narrower than matching: at search time it only ever sees ITC's top k, items that
ITC already finds alike. So besides the in-batch negatives, the stage can draw them where re-ranking will meet them
(`mined_negatives`: from each caption's nearest items, and each item's nearest captions, across the whole set), and
from what ITC is weakest at: a caption with one attribute swapped (`caption_negatives`) and a direction video played
backwards (`reversed_twins`, a positive for the swapped caption and a negative for its own).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from mplug2.model import MPLUG2Retrieval, calibrated_score
from mplug2.tokenizer import Tokenizer
from mplug2.train.caption_negatives import AttributeSwapper
from mplug2.train.config import ITMStageConfig
from mplug2.train.data import Sample, TrainingSet
from mplug2.train.losses import itm_loss, sample_hard_negatives
from mplug2.train.twins import PhraseSwapper
from mplug2.transforms import to_model_input

log = logging.getLogger(__name__)


@dataclass
class TextTokens:
    tokens: torch.Tensor  # [N, L, C] float16
    mask: torch.Tensor  # [N, L]


@dataclass
class Extras:
    """Optional pairs beside the samples' own: one attribute-swapped caption per sample, reversed direction videos."""

    swapped: TextTokens | None = None  # row per sample (a sample without attributes repeats its own caption)
    has_swapped: torch.Tensor | None = None  # [samples] bool
    twin_tokens: torch.Tensor | None = None  # [twins, N, C] float16: reversed frames of direction videos
    twin_feat: torch.Tensor | None = None  # [twins, E]: their ITC vectors
    twin_text: TextTokens | None = None  # [samples] the caption with its directions swapped (own caption if none)
    twin_row: torch.Tensor | None = None  # [samples] row in twin_tokens, -1 for no twin


@dataclass
class EncodedSet:
    """Frozen encoder outputs: per item, visual tokens and ITC vector; per sample, text tokens, mask, ITC vector."""

    visual_tokens: dict[str, torch.Tensor]  # kind -> [items of that kind, N, C] float16
    visual_feat: dict[str, torch.Tensor]  # kind -> [items of that kind, E]
    visual_row: torch.Tensor  # [samples]: row in its kind's tensors
    text: TextTokens  # [samples, L, C] float16 and [samples, L]
    text_feat: torch.Tensor  # [samples, E]
    match_ids: torch.Tensor  # [samples]: `Sample.match`, which decides positives
    kinds: list[str]
    extras: Extras


@torch.no_grad()
def encode_set(
    model: MPLUG2Retrieval,
    tokenizer: Tokenizer,
    dataset: TrainingSet,
    samples: int,
    batch_size: int = 64,
    seed: int = 0,
    attributes: AttributeSwapper | None = None,
    directions: PhraseSwapper | None = None,
) -> EncodedSet:
    """Run the frozen encoders once over every sample (each item's frames once, with a seeded frame choice); with
    `attributes`, also each sample's caption with one attribute swapped; with `directions`, each direction video
    reversed and its caption with the directions swapped."""
    model.eval()
    loaded = [dataset.load(index, np.random.default_rng([seed, index])) for index in range(samples)]
    kinds = [sample.kind for sample in loaded]
    first_of_item: dict[int, int] = {}
    for index, sample in enumerate(loaded):
        first_of_item.setdefault(sample.item_id, index)
    visual_tokens, visual_feat, row_of_item = {}, {}, {}
    for kind in sorted(set(kinds)):
        owners = [index for item, index in first_of_item.items() if loaded[index].kind == kind]
        visual_tokens[kind], visual_feat[kind] = _encode_visual(model, [loaded[i].frames for i in owners], kind)
        row_of_item.update({loaded[index].item_id: row for row, index in enumerate(owners)})
    captions = [sample.caption for sample in loaded]
    text, text_feat = _encode_text(model, tokenizer, captions)
    extras = Extras()
    if attributes is not None:
        rng = np.random.default_rng([seed, 1])
        swapped = [attributes.negative(caption, rng) for caption in captions]
        extras.has_swapped = torch.tensor([caption is not None for caption in swapped])
        extras.swapped, _ = _encode_text(model, tokenizer, [s or c for s, c in zip(swapped, captions, strict=True)])
    if directions is not None:
        extras.twin_text, extras.twin_tokens, extras.twin_feat, extras.twin_row = _encode_twins(
            model, tokenizer, loaded, directions
        )
    return EncodedSet(
        visual_tokens,
        visual_feat,
        torch.tensor([row_of_item[sample.item_id] for sample in loaded]),
        text,
        text_feat,
        torch.tensor([sample.match for sample in loaded]),
        kinds,
        extras,
    )


def _encode_visual(
    model: MPLUG2Retrieval, frames: list[np.ndarray], kind: str, batch_size: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    tokens, feats = [], []
    for start in range(0, len(frames), batch_size):
        video = to_model_input(np.stack(frames[start : start + batch_size]), model.config, kind)
        output = model.encode_video(video)
        tokens.append(output.tokens.half())
        feats.append(output.feat)
    if not tokens:
        return torch.zeros(0), torch.zeros(0)
    return torch.cat(tokens), torch.cat(feats)


def _encode_text(model: MPLUG2Retrieval, tokenizer: Tokenizer, captions: list[str]) -> tuple[TextTokens, torch.Tensor]:
    preprocess = model.config.preprocess
    length = max(preprocess.text_max_length_video, preprocess.text_max_length_image)  # one length: one tensor
    tokens, masks, feats = [], [], []
    for start in range(0, len(captions), 256):
        ids, mask = tokenizer(captions[start : start + 256], length)
        output = model.encode_text(ids, mask)
        tokens.append(output.tokens.half())
        masks.append(output.mask)
        feats.append(output.feat)
    return TextTokens(torch.cat(tokens), torch.cat(masks)), torch.cat(feats)


def _encode_twins(
    model: MPLUG2Retrieval, tokenizer: Tokenizer, loaded: list[Sample], directions: PhraseSwapper
) -> tuple[TextTokens, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each video sample whose caption names a direction: its frames reversed (encoded once per item) and its
    caption with the directions swapped."""
    twin_captions = [
        directions.swap(sample.caption) if sample.kind == "video" and len(sample.frames) > 1 else None
        for sample in loaded
    ]
    row_of_item: dict[int, int] = {}
    reversed_frames = []
    for sample, caption in zip(loaded, twin_captions, strict=True):
        if caption is not None and sample.item_id not in row_of_item:
            row_of_item[sample.item_id] = len(reversed_frames)
            reversed_frames.append(np.ascontiguousarray(sample.frames[::-1]))
    tokens, feats = _encode_visual(model, reversed_frames, "video")
    text, _ = _encode_text(model, tokenizer, [c or s.caption for c, s in zip(twin_captions, loaded, strict=True)])
    rows = [row_of_item[s.item_id] if c is not None else -1 for c, s in zip(twin_captions, loaded, strict=True)]
    return text, tokens, feats, torch.tensor(rows)


def mine_neighbours(encoded: EncodedSet, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """By ITC over the whole set, within each kind: for each sample, the rows (in its kind's visual tensors) of the
    `top_k` items nearest its caption, and the `top_k` captions (sample indices) nearest its item; never its own
    item's, nor those of an item that matches it (`match_ids`). These are the candidates a re-ranker meets at search
    time. Returns two [samples, K] tensors (a kind with too few items repeats its nearest)."""
    samples = len(encoded.kinds)
    nearest_items = torch.zeros(samples, top_k, dtype=torch.long)
    nearest_texts = torch.arange(samples)[:, None].repeat(1, top_k)
    visual_row = encoded.visual_row
    for kind in sorted(set(encoded.kinds)):
        members = torch.tensor([i for i, k in enumerate(encoded.kinds) if k == kind])
        member_matches, rows = encoded.match_ids[members], visual_row[members]
        row_match = torch.empty(len(encoded.visual_feat[kind]), dtype=torch.long)
        row_match[rows] = member_matches
        text_to_item = encoded.text_feat[members] @ encoded.visual_feat[kind].T
        same = member_matches[:, None] == member_matches[None, :]
        own = member_matches[:, None] == row_match[None, :]
        k_items, k_texts = min(top_k, int((~own).sum(dim=1).min())), min(top_k, int((~same).sum(dim=1).min()))
        if k_items <= 0 or k_texts <= 0:
            continue  # every item of this kind matches the others: no negative to mine
        nearest_items[members, :k_items] = text_to_item.masked_fill(own, -math.inf).topk(k_items, dim=1).indices
        item_to_text = text_to_item.T[rows]  # [members, members]: each sample's item against every caption
        nearest = item_to_text.masked_fill(same, -math.inf).topk(k_texts, dim=1).indices
        nearest_texts[members, :k_texts] = members[nearest]
        nearest_items[members, k_items:] = nearest_items[members, :1]
        nearest_texts[members, k_texts:] = nearest_texts[members, :1]
    return nearest_items, nearest_texts


def fusion_parameters(model: MPLUG2Retrieval) -> list[torch.nn.Parameter]:
    return [*model.fusion_encoder.parameters(), *model.itm_head.parameters()]


def train_itm_stage(
    model: MPLUG2Retrieval, encoded: EncodedSet, dataset: TrainingSet, config: ITMStageConfig
) -> list[dict]:
    """Train the fusion encoder and ITM head on `encoded`; every other weight stays frozen. Returns the loss log."""
    model.requires_grad_(False)
    parameters = fusion_parameters(model)
    for parameter in parameters:
        parameter.requires_grad_(True)
    optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)

    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress = min(1.0, (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps))
        floor = config.min_lr / config.lr
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    mining = config.mined_negatives > 0 or config.rank_weight > 0
    nearest = mine_neighbours(encoded, config.mine_top_k) if mining else None
    model.train()
    started, step, epoch, log_rows = time.monotonic(), 0, 0, []
    while step < config.max_steps:
        for batch in dataset.batches(epoch, config.batch_size, config.seed + 7919):
            generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
            texts, visuals, labels = _step_pairs(model, encoded, torch.tensor(batch), nearest, config, generator)
            loss = itm_loss(model.itm_logits(texts.tokens.float(), texts.mask, visuals.float()), labels)
            row = {"step": step + 1, "itm": loss.item()}
            if config.rank_weight > 0:
                rank = _rank_loss(model, encoded, torch.tensor(batch), nearest, config)
                loss, row["rank"] = loss + config.rank_weight * rank, rank.item()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            step += 1
            log_rows.append({**row, "lr": scheduler.get_last_lr()[0]})
            if step % config.log_every == 0:
                log.info("itm stage step %d: loss %.4f", step, loss.item())
            out_of_time = config.time_limit_s is not None and time.monotonic() - started > config.time_limit_s
            if step >= config.max_steps or out_of_time:
                model.eval()
                return log_rows
        epoch += 1
    model.eval()
    return log_rows


def _step_pairs(
    model: MPLUG2Retrieval,
    encoded: EncodedSet,
    index: torch.Tensor,
    nearest: tuple[torch.Tensor, torch.Tensor] | None,
    config: ITMStageConfig,
    generator: torch.Generator,
) -> tuple[TextTokens, torch.Tensor, torch.Tensor]:
    """One step's (text, visual tokens, label) pairs for the samples `index` (one kind): each positive, a negative
    caption for its visual and a negative visual for its caption (in-batch by ITC, or mined), then the extras."""
    kind = encoded.kinds[int(index[0])]
    all_visual = encoded.visual_tokens[kind]
    rows = encoded.visual_row[index]
    match_ids = encoded.match_ids[index]
    sim = encoded.text_feat[index] @ encoded.visual_feat[kind][rows].T / model.temp.detach()  # [B, B] text -> visual
    share = config.random_negatives
    negative_text = index[sample_hard_negatives(sim.T, match_ids, match_ids, generator, share)]
    negative_rows = rows[sample_hard_negatives(sim, match_ids, match_ids, generator, share)]
    if nearest is not None:
        nearest_items, nearest_texts = nearest
        size, top_k = len(index), nearest_items.shape[1]
        pick = torch.randint(top_k, (size,), generator=generator)
        mined = torch.rand(size, generator=generator) < config.mined_negatives
        negative_rows = torch.where(mined, nearest_items[index, pick], negative_rows)
        mined = torch.rand(size, generator=generator) < config.mined_negatives
        negative_text = torch.where(mined, nearest_texts[index, pick], negative_text)
    own_text = encoded.text
    texts = [_rows(own_text, index), _rows(own_text, negative_text), _rows(own_text, index)]
    visuals = [all_visual[rows], all_visual[rows], all_visual[negative_rows]]
    labels = [torch.ones(len(index)), torch.zeros(2 * len(index))]
    extras = encoded.extras
    if extras.swapped is not None and config.caption_negatives > 0:
        chosen = extras.has_swapped[index] & (torch.rand(len(index), generator=generator) < config.caption_negatives)
        texts.append(_rows(extras.swapped, index[chosen]))
        visuals.append(all_visual[rows[chosen]])
        labels.append(torch.zeros(int(chosen.sum())))
    if extras.twin_row is not None and kind == "video":
        with_twin = extras.twin_row[index] >= 0
        twin_visual = extras.twin_tokens[extras.twin_row[index[with_twin]]]
        twin_text = _rows(extras.twin_text, index[with_twin])
        # The reversed video matches the swapped caption only; each is a negative for its original's partner.
        texts += [twin_text, _rows(own_text, index[with_twin]), twin_text]
        visuals += [twin_visual, twin_visual, all_visual[rows[with_twin]]]
        count = int(with_twin.sum())
        labels += [torch.ones(count), torch.zeros(2 * count)]
    joined = TextTokens(torch.cat([t.tokens for t in texts]), torch.cat([t.mask for t in texts]))
    return joined, torch.cat(visuals), torch.cat(labels).long()


def _rank_loss(
    model: MPLUG2Retrieval,
    encoded: EncodedSet,
    index: torch.Tensor,
    nearest: tuple[torch.Tensor, torch.Tensor],
    config: ITMStageConfig,
) -> torch.Tensor:
    """Cross-entropy that ranks each caption's own item first among its nearest ITC neighbours (and, for a direction
    caption, its reversed twin) by the engine's final score. Why: the binary ITM loss asks whether one pair matches;
    re-ranking asks which of ITC's top candidates matches best, and its score adds the ITC logit, so what the ITM head
    must learn is the correction ITC needs among exactly those candidates."""
    kind = encoded.kinds[int(index[0])]
    rows = encoded.visual_row[index]
    others = nearest[0][index, : config.rank_candidates - 1]  # [B, C - 1], hardest first
    candidate_tokens = torch.cat([rows[:, None], others], dim=1)
    visual_feat = encoded.visual_feat[kind][candidate_tokens]  # [B, C, E]
    visual_tokens = encoded.visual_tokens[kind][candidate_tokens]  # [B, C, N, D]
    extras = encoded.extras
    if extras.twin_row is not None and kind == "video":
        twin = extras.twin_row[index]
        with_twin = twin >= 0
        visual_feat[with_twin, -1] = extras.twin_feat[twin[with_twin]]
        visual_tokens[with_twin, -1] = extras.twin_tokens[twin[with_twin]]
    size, count = candidate_tokens.shape
    cosine = torch.einsum("be,bce->bc", encoded.text_feat[index], visual_feat)
    text_tokens = encoded.text.tokens[index].float().repeat_interleave(count, dim=0)
    text_mask = encoded.text.mask[index].repeat_interleave(count, dim=0)
    logits = model.itm_logits(text_tokens, text_mask, visual_tokens.flatten(0, 1).float()).view(size, count, 2)
    scores = calibrated_score(cosine, logits, model.temp.detach())
    return torch.nn.functional.cross_entropy(scores, torch.zeros(size, dtype=torch.long))


def _rows(text: TextTokens, index: torch.Tensor) -> TextTokens:
    return TextTokens(text.tokens[index], text.mask[index])
