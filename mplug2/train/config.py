"""Training settings, apart from the loop so that the command line can read their defaults without importing torch."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainConfig:
    """Training settings (never part of a model config)."""

    epochs: int = 10
    batch_size: int = 32
    grad_accum: int = 1
    lr: float = 1e-4
    min_lr: float = 1e-6
    weight_decay: float = 0.02
    warmup_steps: int = 100
    itm_weight: float = 1.0
    queue_size: int = 0  # > 0: momentum encoders, feature queues and distillation (mPLUG v1 uses 65536)
    momentum: float = 0.995
    distill_alpha: float = 0.4
    hard_batches: float = 0.0  # from epoch 2: share of samples in batches of the model's own nearest neighbours
    reversed_twins: float = 0.0  # share of direction-captioned videos joined in their batch by a time-reversed twin
    itm_random_negatives: float = 0.0  # share of ITM negatives drawn uniformly instead of by ITC similarity
    caption_negatives: float = 0.0  # share of samples whose caption, one attribute changed, is an ITC + ITM negative
    # share of samples whose caption is cut down to the phrases of the `partial_attributes` groups of the attribute
    # words ("star"), a positive for every video of those values (mplug2/train/partial_captions.py)
    partial_captions: float = 0.0
    partial_attributes: tuple[str, ...] = ("shape",)
    # > 0: a caption and its one-attribute-changed negative (caption negatives, reversed twins' captions), and a video
    # and its reversed twin, are kept below this cosine within their own tower (losses.separation_loss)
    separation_margin: float = 0.0
    # learning rate of the video encoder's temporal adapters (lmhra) over `lr`: their depthwise convolutions over time
    # start near zero and, at the common rate, stay there (the model never learns time order)
    temporal_lr_scale: float = 1.0
    # learning rate of the text tower (text encoder, its universal layers, text_proj) over `lr`; 0 holds it still, so
    # a new visual tower learns to meet the text embeddings of a trained model instead of both drifting together
    text_lr_scale: float = 1.0
    seed: int = 0
    precision: str = "auto"  # auto: bf16 autocast on GPU, float32 on CPU
    checkpoint_every: int = 200  # optimizer steps
    log_every: int = 20
    max_steps: int | None = None
    time_limit_s: float | None = None  # stop (and checkpoint) once exceeded
    grad_clip: float = 5.0


@dataclass
class ITMStageConfig:
    """Settings of the ITM stage (mplug2/train/itm_stage.py): fusion encoder and ITM head on frozen encoders."""

    max_steps: int = 4000
    batch_size: int = 64
    lr: float = 5e-4
    min_lr: float = 1e-6
    warmup_steps: int = 100
    weight_decay: float = 0.02
    time_limit_s: float | None = None
    seed: int = 0
    log_every: int = 50
    checkpoint_every: int = 100  # steps (~2 minutes at 96 px on 2 cores)
    random_negatives: float = 0.0  # share of negatives drawn uniformly instead of by ITC similarity
    mined_negatives: float = 0.0  # share of negatives drawn from the ITC top `mine_top_k` across the whole set
    mine_top_k: int = 16
    caption_negatives: float = 0.0  # share of samples paired with their caption, one attribute swapped, as a negative
    # > 0: also a listwise loss, weighted so, that ranks each caption's own item first among `rank_candidates` - 1 of
    # its mined ITC neighbours (its reversed twin among them) by the engine's final score, ITC logit + ITM log-odds
    rank_weight: float = 0.0
    rank_candidates: int = 8


@dataclass
class LabelStageConfig:
    """The visual tower alone, taught to name labelled attributes of single frames (mplug2/train/label_stage.py)."""

    steps: int = 1000
    # the attributes it names, one head each (their values: indexer/synthetic/labelled_frames.py)
    attributes: tuple[str, ...] = ("shape", "colour", "background", "size")
    batch_size: int = 64
    lr: float = 1e-3
    head_lr: float = 1e-3
    weight_decay: float = 0.02
    warmup_steps: int = 50
    # logits are cosine-like (the ITC vector is unit length): divide by this so the heads can reach confident answers
    temperature: float = 0.1
    seed: int = 0
    log_every: int = 50
    checkpoint_every: int = 100  # steps (~2 minutes at 96 px on 2 cores)
