"""Every indexing setting and its default, declared once. Light to import (no torch, no faiss): the `index`
command builds its options' defaults from `IndexOptions()`, so the command line and the library never disagree."""

from __future__ import annotations

from dataclasses import dataclass, field

from indexer.media.segment import SegmentPolicy
from indexer.settings import RuntimeOptions


@dataclass
class IndexOptions:
    """Every indexing setting and its default, declared once (the `index` command reads its defaults from here)."""

    feature_mode: str | None = None  # full | pooled | none; None: the archive's recorded mode (full for a new one)
    feature_budget_mb: int | None = None
    factory: str | None = None  # None: keep the archive's (Flat for a new one)
    segment: SegmentPolicy = field(default_factory=SegmentPolicy)
    workers: int = 2
    decoder: str = "auto"  # auto (decord, then ffmpeg) or torchcodec (NVDEC on a GPU, then ffmpeg); decord; ffmpeg
    decode_timeout_s: float = 120.0
    decode_memory_mb: int = 4096
    batch_size: int = 16
    thumbnail_side: int = 320
    save_every_batches: int = 20
    retry_failed: bool = False
    prune_missing: bool = False  # retire the files of folders that are gone (by default they stay, offline)
    compact_above: float = 0.3  # compact the feature store after a run once this share of its bytes is retired clips'
    progress: bool = True
    runtime: RuntimeOptions = field(default_factory=RuntimeOptions)  # None/auto: what the archive was built with
