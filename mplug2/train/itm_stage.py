"""A second training stage for the fusion encoder and ITM head alone, on cached encoder outputs.

Why: trained jointly from random weights, ITM is the slow learner. Its hard negatives are only informative once ITC
has learnt, and each joint step spends most of its time in the encoders. With the encoders frozen, their outputs
(visual tokens, text tokens, ITC vectors) are computed once; a step then runs only the fusion layers, many times
faster, on hard negatives drawn from the now-meaningful ITC similarities (as in the joint stage). The encoders, and
so every indexed vector, stay exactly as they were.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from mplug2.model import MPLUG2Retrieval
from mplug2.tokenizer import Tokenizer
from mplug2.train.data import TrainingSet
from mplug2.train.losses import itm_loss, sample_hard_negatives
from mplug2.transforms import to_model_input

log = logging.getLogger(__name__)


@dataclass
class ITMStageConfig:
    max_steps: int = 4000
    batch_size: int = 64
    lr: float = 5e-4
    min_lr: float = 1e-6
    warmup_steps: int = 100
    weight_decay: float = 0.02
    time_limit_s: float | None = None
    seed: int = 0
    log_every: int = 50
    random_negatives: float = 0.0  # share of negatives drawn uniformly instead of by ITC similarity


@dataclass
class EncodedSet:
    """Frozen encoder outputs: per item, visual tokens and ITC vector; per sample, text tokens, mask, ITC vector."""

    visual_tokens: dict[str, torch.Tensor]  # kind -> [items of that kind, N, C] float16
    visual_feat: dict[str, torch.Tensor]  # kind -> [items of that kind, E]
    visual_row: list[int]  # sample -> row in its kind's tensors
    text_tokens: torch.Tensor  # [samples, L, C] float16
    text_mask: torch.Tensor  # [samples, L]
    text_feat: torch.Tensor  # [samples, E]
    item_ids: torch.Tensor  # [samples]
    kinds: list[str]


@torch.no_grad()
def encode_set(
    model: MPLUG2Retrieval,
    tokenizer: Tokenizer,
    dataset: TrainingSet,
    samples: int,
    batch_size: int = 64,
    seed: int = 0,
) -> EncodedSet:
    """Run the frozen encoders once over every sample (each item's frames once, with a seeded frame choice)."""
    model.eval()
    preprocess = model.config.preprocess
    loaded = [dataset.load(index, np.random.default_rng([seed, index])) for index in range(samples)]
    kinds = [sample.kind for sample in loaded]
    first_of_item: dict[int, int] = {}
    for index, sample in enumerate(loaded):
        first_of_item.setdefault(sample.item_id, index)
    visual_tokens, visual_feat, row_of_item = {}, {}, {}
    for kind in sorted(set(kinds)):
        owners = [index for item, index in first_of_item.items() if loaded[index].kind == kind]
        tokens, feats = [], []
        for start in range(0, len(owners), batch_size):
            chunk = [loaded[i] for i in owners[start : start + batch_size]]
            video = to_model_input(np.stack([s.frames for s in chunk]), model.config, kind)
            output = model.encode_video(video)
            tokens.append(output.tokens.half())
            feats.append(output.feat)
        visual_tokens[kind], visual_feat[kind] = torch.cat(tokens), torch.cat(feats)
        row_of_item.update({loaded[index].item_id: row for row, index in enumerate(owners)})
    text_tokens, text_mask, text_feat = [], [], []
    length = max(preprocess.text_max_length_video, preprocess.text_max_length_image)  # one length: one tensor
    for start in range(0, samples, 256):
        chunk = loaded[start : start + 256]
        ids, mask = tokenizer([s.caption for s in chunk], length)
        output = model.encode_text(ids, mask)
        text_tokens.append(output.tokens.half())
        text_mask.append(output.mask)
        text_feat.append(output.feat)
    return EncodedSet(
        visual_tokens,
        visual_feat,
        [row_of_item[sample.item_id] for sample in loaded],
        torch.cat(text_tokens),
        torch.cat(text_mask),
        torch.cat(text_feat),
        torch.tensor([sample.item_id for sample in loaded]),
        kinds,
    )


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
    model.train()
    started, step, epoch, log_rows = time.monotonic(), 0, 0, []
    temp = model.temp.detach()
    while step < config.max_steps:
        for batch in dataset.batches(epoch, config.batch_size, config.seed + 7919):
            index = torch.tensor(batch)
            kind = encoded.kinds[batch[0]]
            rows = torch.tensor([encoded.visual_row[i] for i in batch])
            visual_tokens = encoded.visual_tokens[kind][rows].float()
            text_tokens, text_mask = encoded.text_tokens[index].float(), encoded.text_mask[index]
            item_ids = encoded.item_ids[index]
            sim = encoded.text_feat[index] @ encoded.visual_feat[kind][rows].T / temp  # [B, B] text -> visual
            generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
            share = config.random_negatives
            negative_text = sample_hard_negatives(sim.T, item_ids, item_ids, generator, share)
            negative_visual = sample_hard_negatives(sim, item_ids, item_ids, generator, share)
            pair_text = torch.cat([text_tokens, text_tokens[negative_text], text_tokens])
            pair_mask = torch.cat([text_mask, text_mask[negative_text], text_mask])
            pair_visual = torch.cat([visual_tokens, visual_tokens, visual_tokens[negative_visual]])
            size = len(batch)
            labels = torch.cat([torch.ones(size), torch.zeros(2 * size)]).long()
            loss = itm_loss(model.itm_logits(pair_text, pair_mask, pair_visual), labels)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            step += 1
            log_rows.append({"step": step, "itm": loss.item(), "lr": scheduler.get_last_lr()[0]})
            if step % config.log_every == 0:
                log.info("itm stage step %d: loss %.4f", step, loss.item())
            out_of_time = config.time_limit_s is not None and time.monotonic() - started > config.time_limit_s
            if step >= config.max_steps or out_of_time:
                model.eval()
                return log_rows
        epoch += 1
    model.eval()
    return log_rows
