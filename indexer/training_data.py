"""Training data: captioned videos and images from annotation files, decoded once into a frame cache.

Decoding every video every epoch is far too slow on a CPU, so each item is decoded once (in the DecodePool) into a
uint8 memory map at the model's resolution. Videos keep 2 frames per segment (the middles of each segment's two
halves), so training can still pick a random frame per segment as the official recipe does; images keep one frame.
The cache build resumes after an interruption; items that fail to decode are reported and left out.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer.atomic import atomic_write_numpy
from indexer.media.decode import DecodeResult
from indexer.media.request import DecodeRequest, model_request
from indexer.media.workers import DecodePool
from mplug2.config import MPLUG2Config
from mplug2.train.data import Sample, batch_order

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnnotatedItem:
    path: str  # relative to the media folder
    kind: str  # "video" or "image"
    captions: tuple[str, ...]
    start: float = 0.0
    end: float | None = None
    # What the captions describe, when the annotations say (the synthetic format's `attributes`), as one canonical
    # JSON string: items of one kind with the same description answer each other's captions.
    description: str | None = None


def read_annotations(files: Sequence[str | Path]) -> list[AnnotatedItem]:
    """jsonl (or a json list) rows `{"video"|"clip_name"|"image": path, "caption": str | [str], "start"?, "end"?,
    "attributes"?: {name: value}}`."""
    items = []
    for file in files:
        text = Path(file).read_text()
        rows = (
            json.loads(text)
            if text.lstrip().startswith("[")
            else [json.loads(line) for line in text.splitlines() if line.strip()]
        )
        for number, row in enumerate(rows, 1):
            path = row.get("video") or row.get("clip_name") or row.get("image")
            if not path or "caption" not in row:
                raise ValueError(f"{file}, row {number}: needs `video` (or `clip_name`/`image`) and `caption`")
            captions = row["caption"] if isinstance(row["caption"], list) else [row["caption"]]
            kind = "image" if "image" in row else "video"
            attributes = row.get("attributes")
            description = json.dumps(attributes, sort_keys=True) if isinstance(attributes, dict) else None
            start, end = float(row.get("start", 0.0)), row.get("end")
            items.append(AnnotatedItem(path, kind, tuple(captions), start, end, description))
    return items


class FrameCache:
    """uint8 frames [N, K, S, S, 3] of one kind in `folder`, with a `done` mask; built by `fill`."""

    def __init__(self, folder: Path, kind: str, count: int, frames: int, size: int, fingerprint: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        stem = folder / f"{kind}-{fingerprint}-{count}x{frames}x{size}"
        shape = (count, frames, size, size, 3)
        mode = "r+" if stem.with_suffix(".u8").exists() else "w+"
        self.frames = np.memmap(stem.with_suffix(".u8"), dtype=np.uint8, mode=mode, shape=shape)
        self._done_path = stem.with_suffix(".done.npy")
        self.done = np.load(self._done_path) if self._done_path.exists() else np.zeros(count, dtype=np.int8)

    def fill(self, requests: list[DecodeRequest], workers: int, progress: bool = True) -> list[str]:
        """Decode every request not yet done (request.tag = row); returns the errors of the ones that failed."""
        from tqdm import tqdm

        todo = [r for r in requests if self.done[r.tag] == 0]
        errors: list[str] = []
        with DecodePool(workers=workers, timeout_s=60) as pool:
            for count, (request, outcome) in enumerate(
                tqdm(pool.imap(todo), total=len(todo), disable=not progress, desc="decoding into the frame cache"), 1
            ):
                if isinstance(outcome, DecodeResult) and outcome.spans[0].frames is not None:
                    self.frames[request.tag] = outcome.spans[0].frames
                    self.done[request.tag] = 1
                else:
                    self.done[request.tag] = -1
                    errors.append(str(outcome if not isinstance(outcome, DecodeResult) else outcome.spans[0].error))
                if count % 200 == 0:
                    self._flush()
        self._flush()
        return errors

    def _flush(self) -> None:
        self.frames.flush()
        atomic_write_numpy(self._done_path, self.done)


def _match_ids(items: list[AnnotatedItem]) -> list[int]:
    """Per item, the index of the first item of its kind with the same description (itself when it has none)."""
    first: dict[tuple[str, str], int] = {}
    return [
        index if item.description is None else first.setdefault((item.kind, item.description), index)
        for index, item in enumerate(items)
    ]


def _fingerprint(items: list[AnnotatedItem], kind: str, interpolation: str) -> str:
    """Which files and spans a cache holds: a cache of other annotations is never mistaken for this one."""
    listing = [(item.path, item.start, item.end) for item in items if item.kind == kind]
    return hashlib.sha1(json.dumps([listing, interpolation]).encode()).hexdigest()[:12]


class CaptionedMedia:
    """A `TrainingSet`: one sample per (item, caption); video samples draw a random frame per segment."""

    def __init__(
        self,
        items: list[AnnotatedItem],
        media_dir: Path,
        config: MPLUG2Config,
        cache_dir: Path,
        workers: int = 2,
        num_frames: int | None = None,
        progress: bool = True,
    ) -> None:
        self.num_frames = num_frames or config.preprocess.num_frames
        size = config.image_size
        self.items = items
        self.caches: dict[str, FrameCache] = {}
        self.rows: list[int] = []  # item index -> row in its kind's cache
        rows_by_kind: dict[str, int] = {"video": 0, "image": 0}
        for item in items:
            self.rows.append(rows_by_kind[item.kind])
            rows_by_kind[item.kind] += 1
        errors: list[str] = []
        for kind, count in rows_by_kind.items():
            if count == 0:
                continue
            frames = 2 * self.num_frames if kind == "video" else 1
            preprocess = config.preprocess
            interpolation = preprocess.video_interpolation if kind == "video" else preprocess.image_interpolation
            cache = FrameCache(cache_dir, kind, count, frames, size, _fingerprint(items, kind, interpolation))
            requests = [
                model_request(
                    config, str(media_dir / item.path), kind, ((item.start, item.end),), num_frames=frames, tag=row
                )
                for item, row in zip(items, self.rows, strict=True)
                if item.kind == kind
            ]
            errors += cache.fill(requests, workers, progress)
            self.caches[kind] = cache
        if errors:
            log.warning("%d items could not be decoded and are left out, e.g. %s", len(errors), errors[0])
        self.samples = [
            (index, caption)
            for index, item in enumerate(items)
            if self._usable(index)
            for caption in range(len(item.captions))
        ]
        self.kinds = [items[index].kind for index, _ in self.samples]
        self.failed = errors
        self.match_of_item = _match_ids(items)

    def _usable(self, index: int) -> bool:
        return self.caches[self.items[index].kind].done[self.rows[index]] == 1

    def __len__(self) -> int:
        return len(self.samples)

    def batches(
        self,
        epoch: int,
        batch_size: int,
        seed: int,
        hard_fraction: float = 0.0,
        features: np.ndarray | None = None,
        item_ids: Sequence[int] | None = None,
    ) -> list[list[int]]:
        return batch_order(self.kinds, epoch, batch_size, seed, hard_fraction, features, item_ids)

    def load(self, index: int, rng: np.random.Generator) -> Sample:
        item_index, caption = self.samples[index]
        item = self.items[item_index]
        cached = self.caches[item.kind].frames[self.rows[item_index]]
        if item.kind == "video":
            # Cached frame 2i and 2i+1 are the two halves of segment i: a random one per segment.
            picks = 2 * np.arange(self.num_frames) + rng.integers(0, 2, self.num_frames)
            frames = np.asarray(cached[picks])
        else:
            frames = np.asarray(cached[:1])
        return Sample(frames, item.captions[caption], item_index, item.kind, self.match_of_item[item_index])
