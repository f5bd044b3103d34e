"""Plan and write the benchmark: which items each split holds, then render and encode them in parallel.

Every item is planned in the parent from the seed alone (so the plan never depends on worker scheduling); each
worker renders from a generator seeded by (seed, split, index). Same seed, same annotations and same frames.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from indexer.media.encode import encode_frames
from indexer.synthetic.attributes import (
    BACKGROUNDS,
    COLOURS,
    MOTIONS,
    OPPOSITE_MOTIONS,
    POSITIONS,
    SHAPES,
    SIZES,
    ShapeSpec,
    caption_words,
    direction_phrase_pairs,
    is_held_out_image_pair,
    is_held_out_triple,
    valid_motion,
)
from indexer.synthetic.captions import image_caption, video_caption
from indexer.synthetic.render import render_image, render_video
from mplug2.train.twins import PhraseSwapper

log = logging.getLogger(__name__)

GENERATOR_VERSION = 2  # 2: direction twins beside the test split (the earlier files are unchanged)
OPPOSITE = {a: b for pair in OPPOSITE_MOTIONS for a, b in (pair, pair[::-1])}
SPLIT_IDS = {"train": 0, "test": 1, "long": 2}
RESOLUTIONS = ((96, 96), (128, 96), (160, 120), (192, 108), (240, 136), (256, 144), (320, 180), (320, 240), (480, 270))
FRAME_RATES = (8, 10, 12, 15, 24, 25, 30)
CODECS = (("libx264", ".mp4", "yuv420p", ("-crf", "23")),) * 18 + (
    ("libvpx-vp9", ".webm", "yuv420p", ("-deadline", "good", "-cpu-used", "5", "-b:v", "300k")),
    ("mjpeg", ".avi", "yuvj420p", ("-q:v", "4")),
)


@dataclass(frozen=True)
class VideoItem:
    split: str
    index: int
    shapes: tuple[ShapeSpec, ...]
    background: str
    captions: int  # how many captions to write for it


@dataclass(frozen=True)
class ImageItem:
    split: str
    index: int
    shape: ShapeSpec
    background: str
    captions: int


@dataclass(frozen=True)
class LongItem:
    index: int
    scenes: tuple[tuple[tuple[ShapeSpec, ...], str, float], ...]  # (shapes, background, seconds)


@dataclass
class Plan:
    videos: list[VideoItem] = field(default_factory=list)
    images: list[ImageItem] = field(default_factory=list)
    long: list[LongItem] = field(default_factory=list)


def _rng(seed: int, split: str, index: int, salt: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, SPLIT_IDS[split], index, salt])


def all_triples() -> list[tuple[str, str, str]]:
    return [t for t in itertools.product(COLOURS, SHAPES, MOTIONS) if valid_motion(t[1], t[2])]


def training_triples() -> list[tuple[str, str, str]]:
    """The (colour, shape, motion) combinations training videos may show: all but the test split's."""
    return [t for t in all_triples() if not is_held_out_triple(*t)]


def _sizes_for(motion: str) -> tuple[str | None, ...]:
    return (None,) if motion in ("growing", "shrinking") else SIZES


def plan(
    seed: int, train_videos: int, train_images: int, test_videos: int, test_images: int, long_videos: int = 0
) -> Plan:
    rng = np.random.default_rng([seed, 99])
    result = Plan()
    # Test videos: distinct (held-out triple, background, size) tuples, so every caption has one right answer.
    keys = [
        ShapeSpec(c, s, m, size) for c, s, m in all_triples() if is_held_out_triple(c, s, m) for size in _sizes_for(m)
    ]
    test_keys = [(spec, bg) for spec in keys for bg in BACKGROUNDS]
    if test_videos > len(test_keys):
        raise ValueError(f"at most {len(test_keys)} distinct test videos exist; asked for {test_videos}")
    order = rng.permutation(len(test_keys))[:test_videos]
    result.videos += [VideoItem("test", i, (test_keys[k][0],), test_keys[k][1], 1) for i, k in enumerate(order)]
    seen = training_triples()
    for index in range(train_videos):
        item_rng = _rng(seed, "train", index, 1)
        shapes = [random_shape(seen, item_rng)]
        if item_rng.random() < 0.2:
            second = random_shape(seen, item_rng)
            if second.triple()[:2] != shapes[0].triple()[:2]:
                shapes.append(second)
        background = list(BACKGROUNDS)[int(item_rng.integers(len(BACKGROUNDS)))]
        result.videos.append(VideoItem("train", index, tuple(shapes), background, 3))
    image_keys = [
        (ShapeSpec(c, s, "still", size, position), bg)
        for c, s in itertools.product(COLOURS, SHAPES)
        if is_held_out_image_pair(c, s)
        for size in SIZES
        for position in POSITIONS
        for bg in BACKGROUNDS
    ]
    if test_images > len(image_keys):
        raise ValueError(f"at most {len(image_keys)} distinct test images exist; asked for {test_images}")
    order = rng.permutation(len(image_keys))[:test_images]
    result.images += [ImageItem("test", i, *image_keys[k], 1) for i, k in enumerate(order)]
    pairs = [(c, s) for c, s in itertools.product(COLOURS, SHAPES) if not is_held_out_image_pair(c, s)]
    for index in range(train_images):
        item_rng = _rng(seed, "train", index, 2)
        colour, shape = pairs[int(item_rng.integers(len(pairs)))]
        spec = ShapeSpec(
            colour, shape, "still", SIZES[int(item_rng.integers(2))], POSITIONS[int(item_rng.integers(len(POSITIONS)))]
        )
        result.images.append(ImageItem("train", index, spec, list(BACKGROUNDS)[int(item_rng.integers(4))], 3))
    for index in range(long_videos):
        item_rng = _rng(seed, "long", index, 3)
        scenes = []
        for _ in range(int(item_rng.integers(3, 7))):
            scenes.append(
                (
                    (random_shape(all_triples(), item_rng),),
                    list(BACKGROUNDS)[int(item_rng.integers(4))],
                    float(item_rng.uniform(5.0, 10.0)),
                )
            )
        result.long.append(LongItem(index, tuple(scenes)))
    return result


def random_shape(triples: list[tuple[str, str, str]], rng: np.random.Generator) -> ShapeSpec:
    colour, shape, motion = triples[int(rng.integers(len(triples)))]
    sizes = _sizes_for(motion)
    return ShapeSpec(colour, shape, motion, sizes[int(rng.integers(len(sizes)))])


def _write_video(out: str, item: VideoItem, seed: int, twins: bool = False) -> dict:
    rng = _rng(seed, item.split, item.index)
    width, height = RESOLUTIONS[int(rng.integers(len(RESOLUTIONS)))]
    fps = FRAME_RATES[int(rng.integers(len(FRAME_RATES)))]
    seconds = float(rng.uniform(1.5, 6.0))
    codec, suffix, pix_fmt, extra = CODECS[int(rng.integers(len(CODECS)))]
    relative = f"{item.split}/videos/{item.split}-{item.index:05d}{suffix}"
    frames = list(render_video(list(item.shapes), item.background, width, height, max(2, round(seconds * fps)), rng))
    encode_frames(frames, Path(out) / relative, fps, codec=codec, pix_fmt=pix_fmt, extra_args=extra)
    captions = [video_caption(list(item.shapes), item.background, item.split, rng) for _ in range(item.captions)]
    row = {
        "video": relative,
        "caption": captions if item.captions > 1 else captions[0],
        "attributes": _attributes(item.shapes, item.background),
        "width": width,
        "height": height,
        "fps": fps,
        "frames": len(frames),
    }
    if twins and item.split == "test" and len(item.shapes) == 1 and item.shapes[0].motion in OPPOSITE:
        row["twin"] = _write_twin(out, relative, frames, fps, (codec, pix_fmt, extra), captions[0], row["attributes"])
    return row


def _write_twin(
    out: str, relative: str, frames: list[np.ndarray], fps: int, encoding: tuple, caption: str, attributes: dict
) -> dict:
    """The test video played backwards, captioned with the opposite direction: its direction twin. Only time order
    tells the two apart, so a model blind to it ranks them alike."""
    codec, pix_fmt, extra = encoding
    twin = relative.replace("/videos/", "/twins/").replace(".", "-reversed.", 1)
    encode_frames(frames[::-1], Path(out) / twin, fps, codec=codec, pix_fmt=pix_fmt, extra_args=extra)
    swapped = PhraseSwapper(direction_phrase_pairs()).swap(caption)
    assert swapped is not None, f"a direction caption without a direction phrase: {caption!r}"
    return {"video": twin, "caption": swapped, "attributes": {**attributes, "motion": OPPOSITE[attributes["motion"]]}}


def _write_image(out: str, item: ImageItem, seed: int) -> dict:
    rng = _rng(seed, item.split, item.index, 5)
    width, height = RESOLUTIONS[int(rng.integers(len(RESOLUTIONS)))]
    relative = f"{item.split}/images/{item.split}-{item.index:05d}.png"
    path = Path(out) / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(render_image(item.shape, item.background, width, height, rng)).save(path)
    captions = [image_caption(item.shape, item.background, item.split, rng) for _ in range(item.captions)]
    return {
        "image": relative,
        "caption": captions if item.captions > 1 else captions[0],
        "attributes": _attributes((item.shape,), item.background),
    }


def _write_long(out: str, item: LongItem, seed: int) -> list[dict]:
    rng = _rng(seed, "long", item.index)
    width, height = (320, 180)
    fps = 15
    relative = f"long/videos/long-{item.index:03d}.mp4"

    def frames() -> Iterator[np.ndarray]:
        for shapes, background, seconds in item.scenes:
            yield from render_video(list(shapes), background, width, height, round(seconds * fps), rng)

    encode_frames(frames(), Path(out) / relative, fps, extra_args=("-crf", "23"))
    rows, start = [], 0.0
    for shapes, background, seconds in item.scenes:
        end = start + round(seconds * fps) / fps
        rows.append(
            {
                "video": relative,
                "start": round(start, 3),
                "end": round(end, 3),
                "caption": video_caption(list(shapes), background, "test", rng),
                "attributes": _attributes(shapes, background),
            }
        )
        start = end
    return rows


def _attributes(shapes: tuple[ShapeSpec, ...], background: str) -> dict:
    first = asdict(shapes[0])
    first["background"] = background
    if len(shapes) > 1:
        first["second"] = asdict(shapes[1])
    return {k: v for k, v in first.items() if v is not None}


def generate(
    out: str | Path,
    seed: int = 0,
    train_videos: int = 4000,
    train_images: int = 1000,
    test_videos: int = 500,
    test_images: int = 300,
    long_videos: int = 0,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    direction_twins: bool = False,
) -> dict:
    """Write the benchmark under `out`; returns the manifest. `direction_twins`: also each test video with a
    direction played backwards (test/twins/), and the twin set's annotations."""
    out = Path(out)
    for folder in ("train/videos", "test/videos", "annotations"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    the_plan = plan(seed, train_videos, train_images, test_videos, test_images, long_videos)
    jobs: list[tuple[Callable, object]] = [(_write_video, item) for item in the_plan.videos]
    jobs += [(_write_image, item) for item in the_plan.images] + [(_write_long, item) for item in the_plan.long]
    results: list[object] = []
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        futures = [
            pool.submit(function, str(out), item, seed, direction_twins)
            if function is _write_video
            else pool.submit(function, str(out), item, seed)
            for function, item in jobs
        ]
        for done, future in enumerate(futures, 1):
            results.append(future.result())
            if progress:
                progress(done, len(futures))
    rows: dict[str, list[dict]] = {
        "train_videos": [],
        "test_videos": [],
        "train_images": [],
        "test_images": [],
        "long_scenes": [],
    }
    for (function, item), result in zip(jobs, results, strict=True):
        if function is _write_long:
            rows["long_scenes"].extend(result)  # type: ignore[arg-type]
        else:
            rows[f"{item.split}_{'videos' if function is _write_video else 'images'}"].append(result)
    # The direction twin set: each test video with a direction beside its reversed copy; and the same originals
    # alone, so that a report can set R@1 with the twins against R@1 on the same queries without them.
    pairs = [(row, row.pop("twin")) for row in rows["test_videos"] if "twin" in row]
    originals = [original for original, _ in pairs]
    rows["test_twins"] = originals + [twin for _, twin in pairs]
    rows["test_directions"] = originals
    for name, content in rows.items():
        if content or name not in ("long_scenes", "test_twins", "test_directions"):
            lines = "".join(json.dumps(row, sort_keys=True) + "\n" for row in content)
            (out / "annotations" / f"{name}.jsonl").write_text(lines)
    manifest = {
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "counts": {name: len(content) for name, content in rows.items()},
        "held_out_triples": sorted("/".join(t) for t in all_triples() if is_held_out_triple(*t)),
        "held_out_image_pairs": sorted(
            f"{c}/{s}" for c, s in itertools.product(COLOURS, SHAPES) if is_held_out_image_pair(c, s)
        ),
        "vocabulary": {
            "colours": list(COLOURS),
            "shapes": list(SHAPES),
            "motions": list(MOTIONS),
            "backgrounds": list(BACKGROUNDS),
            "sizes": list(SIZES),
            "positions": list(POSITIONS),
        },
        "caption_words": caption_words(),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest
