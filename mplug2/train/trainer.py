"""The training loop: ITC + ITM, AdamW with warm-up and cosine decay, gradient accumulation, bf16 on GPU,
checkpoints that resume exactly (data order, frame choices and negative sampling all derive from the seed and the
position in training, never from hidden state)."""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mplug2.model import MPLUG2Retrieval, TextOutput
from mplug2.tokenizer import Tokenizer
from mplug2.train.caption_negatives import AttributeSwapper
from mplug2.train.checkpoints import CHECKPOINT, read_checkpoint, write_checkpoint
from mplug2.train.config import TrainConfig
from mplug2.train.data import Sample, TrainingSet
from mplug2.train.losses import itc_loss, itm_loss, sample_hard_negatives, separation_loss
from mplug2.train.partial_captions import PartialCaptions
from mplug2.train.twins import PhraseSwapper, add_time_reversed_twins
from mplug2.transforms import to_model_input

log = logging.getLogger(__name__)

# the text tower: the text encoder (its universal layers, which the visual tokens pass through too) and text_proj
TEXT_TOWER = ("text_encoder.", "text_proj.")
TWIN_ID_OFFSET = 1 << 40  # a time-reversed twin's item id: its original's plus this (no real id comes near it)


@dataclass
class TrainResult:
    steps: int
    seconds: float
    losses: list[dict] = field(default_factory=list)
    stopped_early: bool = False


class FeatureQueue(nn.Module):
    """Momentum features of past batches (ITC negatives), with their item ids; saved in checkpoints."""

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("visual", torch.zeros(size, dim))
        self.register_buffer("text", torch.zeros(size, dim))
        self.register_buffer("ids", torch.full((size,), -1, dtype=torch.long))
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))

    def push(self, visual: torch.Tensor, text: torch.Tensor, ids: torch.Tensor) -> None:
        size, count = len(self.ids), len(ids)
        positions = (self.pointer + torch.arange(count, device=ids.device)) % size
        self.visual[positions], self.text[positions], self.ids[positions] = visual, text, ids
        self.pointer.copy_((self.pointer + count) % size)
        self.filled.copy_(torch.clamp(self.filled + count, max=size))

    def contents(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n = int(self.filled)
        return self.visual[:n], self.text[:n], self.ids[:n]


class Trainer:
    def __init__(
        self,
        model: MPLUG2Retrieval,
        tokenizer: Tokenizer,
        dataset: TrainingSet,
        config: TrainConfig,
        out_dir: Path,
        direction_phrases: PhraseSwapper | None = None,
        attribute_words: AttributeSwapper | None = None,
    ) -> None:
        if not model.with_fusion:
            raise ValueError("training needs the fusion encoder (ITM): build the model with with_fusion=True")
        if config.reversed_twins > 0 and direction_phrases is None:
            raise ValueError("time-reversed twins need the direction phrases to swap in their captions")
        if config.caption_negatives > 0 and attribute_words is None:
            raise ValueError("caption negatives need the attribute words to swap in captions")
        self.partial_captions: PartialCaptions | None = None
        if config.partial_captions > 0:
            if attribute_words is None:
                raise ValueError("partial captions need the attribute words whose phrases they keep")
            if config.queue_size > 0:
                raise ValueError("partial captions match several videos each: train them without a momentum queue")
            self.partial_captions = PartialCaptions(attribute_words, config.partial_attributes)
        self.direction_phrases, self.attribute_words = direction_phrases, attribute_words
        self.model, self.tokenizer, self.dataset, self.config = model, tokenizer, dataset, config
        self.out_dir = Path(out_dir)
        self.device = next(model.parameters()).device
        self.autocast_dtype = (
            torch.bfloat16 if config.precision in ("auto", "bf16") and self.device.type == "cuda" else None
        )
        self.steps_per_epoch = len(dataset.batches(0, config.batch_size, config.seed)) // config.grad_accum
        if self.steps_per_epoch == 0:
            raise ValueError(f"the training set holds less than one batch of {config.batch_size * config.grad_accum}")
        self.total_steps = config.max_steps or config.epochs * self.steps_per_epoch
        self.optimizer = torch.optim.AdamW(self._param_groups(), lr=config.lr, betas=(0.9, 0.999))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.momentum_model: MPLUG2Retrieval | None = None
        self.queue: FeatureQueue | None = None
        if config.queue_size > 0:
            self.momentum_model = copy.deepcopy(model).requires_grad_(False)
            self.queue = FeatureQueue(config.queue_size, model.config.embed_dim).to(self.device)
        self.step = 0
        self.position = (0, 0)  # (epoch, batch index) of the next batch
        self.mined: tuple[int, list[list[int]]] | None = None  # (epoch, its batches) when they came from the model

    def _param_groups(self) -> list[dict]:
        """Weight decay on matrices only; the temporal adapters and the text tower at their own learning rates
        (`TrainConfig.temporal_lr_scale`, `text_lr_scale`); a tower at rate 0 is held still (no gradients at all).
        Groups keep the order and number earlier versions saved, so their checkpoints resume."""
        config = self.config
        groups: dict[tuple[bool, bool, float], list[torch.nn.Parameter]] = {}
        for name, parameter in self.model.named_parameters():
            temporal = ".lmhra" in name
            scale = config.text_lr_scale if name.startswith(TEXT_TOWER) else 1.0
            scale = config.temporal_lr_scale if temporal else scale
            if scale == 0:
                parameter.requires_grad_(False)
                continue
            keep = parameter.ndim < 2 or "embedding" in name or "latents" in name or name == "temp"
            groups.setdefault((not keep, temporal, scale), []).append(parameter)
        return [
            {"params": parameters, "weight_decay": config.weight_decay if decay else 0.0, "lr": config.lr * scale}
            for (decay, _, scale), parameters in sorted(groups.items())
        ]

    def _lr_factor(self, step: int) -> float:
        config = self.config
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress = min(1.0, (step - config.warmup_steps) / max(1, self.total_steps - config.warmup_steps))
        floor = config.min_lr / config.lr
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    # checkpoints

    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / CHECKPOINT

    def save_checkpoint(self) -> None:
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step,
            "position": list(self.position),
            "config": asdict(self.config),
        }
        if self.mined is not None:  # mined batches depend on the weights at the epoch's start: keep them
            state["mined_epoch"], state["mined_batches"] = self.mined[0], self.mined[1]
        if self.momentum_model is not None and self.queue is not None:
            state["momentum_model"] = self.momentum_model.state_dict()
            state["queue"] = self.queue.state_dict()
        write_checkpoint(state, self.checkpoint_path)

    def resume(self) -> bool:
        state = read_checkpoint(self.checkpoint_path, self.device)
        if state is None:
            return False
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.position = state["step"], tuple(state["position"])
        if "mined_epoch" in state:
            self.mined = (state["mined_epoch"], state["mined_batches"])
        if self.momentum_model is not None and self.queue is not None:
            self.momentum_model.load_state_dict(state["momentum_model"])
            self.queue.load_state_dict(state["queue"])
        log.info("resumed from %s at step %d", self.checkpoint_path, self.step)
        return True

    # one batch

    def _tokenize(self, captions: list[str], kind: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and mask at the model's text length for `kind` (official: video 35, image 30)."""
        preprocess = self.model.config.preprocess
        length = preprocess.text_max_length_video if kind == "video" else preprocess.text_max_length_image
        ids, mask = self.tokenizer(captions, length)
        return ids.to(self.device), mask.to(self.device)

    def _inputs(self, samples: list[Sample]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        kind = samples[0].kind
        frames = np.stack([sample.frames for sample in samples])  # [B, T, H, W, 3]
        video = to_model_input(frames, self.model.config, kind).to(self.device)  # [B, T, 3, S, S]
        ids, mask = self._tokenize([sample.caption for sample in samples], kind)
        return video, ids, mask

    def batch_loss(self, samples: list[Sample], generator: torch.Generator) -> tuple[torch.Tensor, dict]:
        model, config = self.model, self.config
        video, ids, mask = self._inputs(samples)
        # Positives and negatives by match id (an item's captions, and items of identical description); the
        # separation hinge pairs each twin with its own original, by item id.
        match_ids = torch.tensor([sample.match for sample in samples], device=self.device)
        item_ids = torch.tensor([sample.item_id for sample in samples], device=self.device)
        visual = model.encode_video(video)
        text = model.encode_text(ids, mask)
        with torch.no_grad():
            model.temp.clamp_(0.001, 0.5)
        keys: dict = {}
        if self.momentum_model is not None and self.queue is not None:
            with torch.no_grad():
                visual_m = self.momentum_model.encode_video(video).feat
                text_m = self.momentum_model.encode_text(ids, mask).feat
                queued_visual, queued_text, queued_ids = self.queue.contents()
                visual_keys = torch.cat([visual_m, queued_visual])
                text_keys = torch.cat([text_m, queued_text])
                keys = {
                    "visual_keys": visual_keys,
                    "text_keys": text_keys,
                    "key_ids": torch.cat([match_ids, queued_ids]),
                    "distill_v2t": visual_m @ text_keys.T / model.temp,
                    "distill_t2v": text_m @ visual_keys.T / model.temp,
                    "alpha": self.distill_alpha(),
                }
            self._pending_queue = (visual_m, text_m, match_ids)
        swapped, owners = self._caption_negatives(samples, generator)
        if swapped is not None and owners is not None:
            keys["negative_text"] = self._itc_caption_negatives(samples, swapped, owners)
        # [caption, visual]: None unless the batch holds partial captions, which fit every video of their values
        positives = self.partial_captions.positives(samples) if self.partial_captions is not None else None
        if positives is not None:
            positives = keys["positives"] = positives.to(self.device)
        loss_itc, sim_v2t, sim_t2v = itc_loss(visual.feat, text.feat, model.temp, match_ids, **keys)
        batch = len(samples)
        share = config.itm_random_negatives
        by_visual = None if positives is None else positives.T
        negative_text = sample_hard_negatives(sim_v2t[:, :batch], match_ids, match_ids, generator, share, by_visual)
        negative_visual = sample_hard_negatives(sim_t2v[:, :batch], match_ids, match_ids, generator, share, positives)
        # Pairs: matched (label 1); each visual with a hard negative text; each text with a hard negative visual;
        # with caption negatives, each of their owners' visuals with its one-attribute-changed caption.
        text_tokens = [text.tokens, text.tokens[negative_text], text.tokens]
        text_mask = [text.mask, text.mask[negative_text], text.mask]
        visual_tokens = [visual.tokens, visual.tokens, visual.tokens[negative_visual]]
        if swapped is not None:
            text_tokens.append(swapped.tokens)
            text_mask.append(swapped.mask)
            visual_tokens.append(visual.tokens[owners])
        negatives = sum(len(tokens) for tokens in text_tokens) - batch
        labels = torch.cat([torch.ones(batch), torch.zeros(negatives)]).long().to(self.device)
        text_tokens, text_mask, visual_tokens = torch.cat(text_tokens), torch.cat(text_mask), torch.cat(visual_tokens)
        loss_itm = itm_loss(model.itm_logits(text_tokens, text_mask, visual_tokens), labels)
        loss = loss_itc + config.itm_weight * loss_itm
        parts = {"itc": loss_itc.item(), "itm": loss_itm.item(), "temp": model.temp.item(), "samples": batch}
        if config.separation_margin > 0:
            loss_separation = self._separation(visual.feat, text.feat, item_ids, swapped, owners)
            loss = loss + loss_separation
            parts["separation"] = loss_separation.item()
        return loss, parts

    def _separation(
        self,
        visual: torch.Tensor,
        text: torch.Tensor,
        item_ids: torch.Tensor,
        swapped: TextOutput | None,
        owners: torch.Tensor | None,
    ) -> torch.Tensor:
        """The separation hinge over the pairs that must differ: each caption negative against its owner's caption,
        and each reversed twin against its original, both its caption and its video."""
        margin = self.config.separation_margin
        ids = item_ids.tolist()
        row_of: dict[int, int] = {}
        for row, item in enumerate(ids):
            row_of.setdefault(item, row)
        twins = [(row, item - TWIN_ID_OFFSET) for row, item in enumerate(ids) if item - TWIN_ID_OFFSET in row_of]
        pairs = [(row_of[original], row) for row, original in twins]
        first = torch.tensor([original for original, _ in pairs], dtype=torch.long, device=text.device)
        second = torch.tensor([twin for _, twin in pairs], dtype=torch.long, device=text.device)
        text_anchors, text_others = [text[first]], [text[second]]
        if swapped is not None and owners is not None:
            text_anchors.append(text[owners])
            text_others.append(swapped.feat)
        text_term = separation_loss(torch.cat(text_anchors), torch.cat(text_others), margin)
        return text_term + separation_loss(visual[first], visual[second], margin)

    def _caption_negatives(
        self, samples: list[Sample], generator: torch.Generator
    ) -> tuple[TextOutput, torch.Tensor] | tuple[None, None]:
        """(the text encoding of one-attribute-changed captions for a `caption_negatives` share of the samples,
        the index of each one's sample), or (None, None) when there are none."""
        if self.attribute_words is None or self.config.caption_negatives == 0:
            return None, None
        rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=generator)))
        captions, owners = [], []
        for index, sample in enumerate(samples):
            if rng.random() < self.config.caption_negatives:
                caption = self.attribute_words.negative(sample.caption, rng)
                if caption is not None:
                    captions.append(caption)
                    owners.append(index)
        if not captions:
            return None, None
        encoded = self.model.encode_text(*self._tokenize(captions, samples[0].kind))
        return encoded, torch.tensor(owners, device=self.device)

    def _itc_caption_negatives(self, samples: list[Sample], swapped: TextOutput, owners: torch.Tensor) -> torch.Tensor:
        """The caption negatives that are ITC keys of every visual in the batch: those of full captions. A cut
        caption's negative ("circle" for a hexagon's "hexagon") fits the batch's circles, so it stays an ITM negative
        of its owner only, and a separation pair (the hinge keeps "hexagon" and "circle" apart in the text tower)."""
        full = torch.tensor([samples[owner].full_caption is None for owner in owners.tolist()], device=owners.device)
        return swapped.feat[full]

    def distill_alpha(self) -> float:
        """mPLUG v1 ramps distillation in over the first epoch: a young momentum model's soft targets are noise."""
        return self.config.distill_alpha * min(1.0, self.step / self.steps_per_epoch)

    @torch.no_grad()
    def _momentum_update(self) -> None:
        if self.momentum_model is None or self.queue is None:
            return
        for online, ema in zip(self.model.parameters(), self.momentum_model.parameters(), strict=True):
            ema.mul_(self.config.momentum).add_(online.detach(), alpha=1 - self.config.momentum)
        self.queue.push(*self._pending_queue)

    # hard-negative mining

    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        """Random batches in the first epoch; then, with `hard_batches`, a share of batches of nearest neighbours
        under the weights at the epoch's start (hard negatives mined by the model itself, as in ANCE)."""
        config = self.config
        if config.hard_batches == 0 or epoch == 0:
            return self.dataset.batches(epoch, config.batch_size, config.seed)
        if self.mined is None or self.mined[0] != epoch:
            features, match_ids = self._visual_features()
            batches = self.dataset.batches(
                epoch, config.batch_size, config.seed, config.hard_batches, features, match_ids
            )
            self.mined = (epoch, batches)
        return self.mined[1]

    @torch.no_grad()
    def _visual_features(self, chunk: int = 256) -> tuple[np.ndarray, list[int]]:
        """Every sample's visual ITC vector under the current weights (each item encoded once), and its match id."""
        self.model.eval()
        rng = np.random.default_rng([self.config.seed, 7919])  # frame choices apart from any epoch's
        by_item: dict[int, np.ndarray] = {}
        item_ids: list[int] = []
        match_ids: list[int] = []
        pending: list[Sample] = []

        def encode() -> None:
            for kind in {sample.kind for sample in pending}:
                group = [sample for sample in pending if sample.kind == kind]
                video = to_model_input(np.stack([s.frames for s in group]), self.model.config, kind).to(self.device)
                for sample, vector in zip(
                    group, self.model.encode_video(video).feat.float().cpu().numpy(), strict=True
                ):
                    by_item[sample.item_id] = vector
            pending.clear()

        for index in range(len(self.dataset)):
            sample = self.dataset.load(index, rng)
            item_ids.append(sample.item_id)
            match_ids.append(sample.match)
            if sample.item_id not in by_item and all(p.item_id != sample.item_id for p in pending):
                pending.append(sample)
            if len(pending) == chunk:
                encode()
        encode()
        self.model.train()
        return np.stack([by_item[item] for item in item_ids]), match_ids

    # the loop

    def train(self, resume: bool = True, progress: bool = True) -> TrainResult:
        from tqdm import tqdm

        if resume:
            self.resume()
        if self.momentum_model is not None and self.step == 0:
            self.momentum_model.load_state_dict(self.model.state_dict())
        self.model.train()
        started = time.monotonic()
        result = TrainResult(self.step, 0.0)
        with tqdm(total=self.total_steps, initial=self.step, desc="training", disable=not progress) as bar:
            while self.step < self.total_steps and not result.stopped_early:
                self._run_epoch(bar, result, started)
        self.save_checkpoint()
        self.model.eval()
        result.steps, result.seconds = self.step, time.monotonic() - started
        return result

    def _run_epoch(self, bar, result: TrainResult, started: float) -> None:
        """Train from the saved position to the end of its epoch (or until the step or time budget runs out)."""
        config = self.config
        epoch, start = self.position
        batches = self._epoch_batches(epoch)
        usable = len(batches) - len(batches) % config.grad_accum
        for index in range(start, usable):
            samples = [self.dataset.load(i, np.random.default_rng([config.seed, epoch, i])) for i in batches[index]]
            if self.partial_captions is not None:
                rng = np.random.default_rng([config.seed, epoch, index, 29])
                samples = self.partial_captions.apply(samples, config.partial_captions, rng)
            if config.reversed_twins > 0 and self.direction_phrases is not None:
                rng = np.random.default_rng([config.seed, epoch, index, 17])
                samples = add_time_reversed_twins(
                    samples, self.direction_phrases, config.reversed_twins, rng, TWIN_ID_OFFSET
                )
            generator = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch * 100_003 + index)
            enabled = self.autocast_dtype is not None
            with torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=enabled):
                loss, parts = self.batch_loss(samples, generator)
            (loss / config.grad_accum).backward()
            if (index + 1) % config.grad_accum:
                continue
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.scheduler.step()
            self._momentum_update()
            self.step += 1
            self.position = (epoch, index + 1) if index + 1 < usable else (epoch + 1, 0)
            result.losses.append(
                {"step": self.step, "loss": loss.item(), **parts, "lr": self.scheduler.get_last_lr()[0]}
            )
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", itc=f"{parts['itc']:.3f}", itm=f"{parts['itm']:.3f}")
            if self.step % config.log_every == 0:
                log.info("step %d loss %.4f (itc %.4f itm %.4f)", self.step, loss.item(), parts["itc"], parts["itm"])
            if self.step % config.checkpoint_every == 0:
                self.save_checkpoint()
            if config.time_limit_s is not None and time.monotonic() - started > config.time_limit_s:
                result.stopped_early = self.step < self.total_steps
                return
            if self.step >= self.total_steps:
                return
        self.position = (epoch + 1, 0)
