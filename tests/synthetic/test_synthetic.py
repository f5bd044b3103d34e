"""The synthetic benchmark: splits hold what they promise, captions are unique, and the motion is really there."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from indexer.cli import cli
from indexer.media.decode import decode
from indexer.media.request import DecodeRequest
from indexer.synthetic.attributes import BACKGROUNDS, COLOURS, caption_words, is_held_out_triple
from indexer.synthetic.generate import plan
from indexer.synthetic.render import render_video

# The benchmark these tests make (twice, to check a seed makes it the same).
SMALL_BENCHMARK = ("--seed", "3", "--videos", "12", "--images", "4", "--test-videos", "24", "--test-images", "6")
SMALL_BENCHMARK += ("--long-videos", "1")


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synthetic")
    args = ["make-synthetic", "--out", str(out), *SMALL_BENCHMARK]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return out


def rows(out: Path, name: str) -> list[dict]:
    return [json.loads(line) for line in (out / "annotations" / f"{name}.jsonl").read_text().splitlines()]


def test_direction_twins_play_backwards_with_the_opposite_caption(benchmark: Path) -> None:
    originals, twins = rows(benchmark, "test_directions"), rows(benchmark, "test_twins")
    assert originals and twins == originals + twins[len(originals) :] and len(twins) == 2 * len(originals)
    opposite = {"left": "right", "right": "left", "up": "down", "down": "up", "growing": "shrinking"}
    opposite["shrinking"] = "growing"
    for original, twin in zip(originals, twins[len(originals) :], strict=True):
        assert twin["attributes"]["motion"] == opposite[original["attributes"]["motion"]]
        assert twin["caption"] != original["caption"]
        frames = [
            decode(DecodeRequest(str(benchmark / row["video"]), spans=((0.0, None),), num_frames=6, size=32))
            .spans[0]
            .frames.astype(float)
            for row in (original, twin)
        ]
        # Sampled at mirrored times, the twin's frames are the original's in reverse order (codec noise aside).
        assert np.abs(frames[0] - frames[1][::-1]).mean() < 6.0
        assert np.abs(frames[0] - frames[1]).mean() > np.abs(frames[0] - frames[1][::-1]).mean() + 1.0
    assert all("twin" not in row for row in rows(benchmark, "test_videos"))


def test_held_out_triples_never_reach_training_and_every_attribute_does() -> None:
    the_plan = plan(seed=0, train_videos=4000, train_images=100, test_videos=500, test_images=300)
    train = [item for item in the_plan.videos if item.split == "train"]
    test = [item for item in the_plan.videos if item.split == "test"]
    assert len(test) == 500
    assert not any(is_held_out_triple(*shape.triple()) for item in train for shape in item.shapes)
    assert all(is_held_out_triple(*item.shapes[0].triple()) for item in test)
    for position in range(3):  # each colour, shape and motion alone appears in training
        assert {i.shapes[0].triple()[position] for i in train} == {i.shapes[0].triple()[position] for i in test}
    keys = [(item.shapes[0], item.background) for item in test]
    assert len(set(keys)) == len(keys), "each test caption describes exactly one video"
    image_keys = [(item.shape, item.background) for item in the_plan.images if item.split == "test"]
    assert len(set(image_keys)) == len(image_keys) == 300


def test_same_seed_same_benchmark(benchmark: Path, tmp_path: Path) -> None:
    args = ["make-synthetic", "--out", str(tmp_path), *SMALL_BENCHMARK]
    assert CliRunner().invoke(cli, args).exit_code == 0
    for name in ("train_videos", "test_videos", "train_images", "test_images", "long_scenes"):
        assert (tmp_path / "annotations" / f"{name}.jsonl").read_bytes() == (
            benchmark / "annotations" / f"{name}.jsonl"
        ).read_bytes()
    first = rows(benchmark, "test_videos")[0]["video"]
    a = decode(DecodeRequest(str(benchmark / first), num_frames=2)).spans[0].frames
    b = decode(DecodeRequest(str(tmp_path / first), num_frames=2)).spans[0].frames
    assert np.array_equal(a, b)
    other = plan(seed=4, train_videos=12, train_images=4, test_videos=24, test_images=6)
    assert [i.shapes for i in other.videos] != [i.shapes for i in plan(3, 12, 4, 24, 6).videos]


def test_files_match_their_annotations(benchmark: Path) -> None:
    for row in rows(benchmark, "train_videos")[:4] + rows(benchmark, "test_videos")[:4]:
        result = decode(DecodeRequest(str(benchmark / row["video"]), num_frames=2))
        assert (result.info.width, result.info.height) == (row["width"], row["height"])
        assert result.info.fps == pytest.approx(row["fps"], rel=0.01)
        assert result.info.frame_count == row["frames"]
    for row in rows(benchmark, "test_images"):
        assert (benchmark / row["image"]).is_file()
    words = set(caption_words())
    for row in rows(benchmark, "train_videos") + rows(benchmark, "test_videos") + rows(benchmark, "test_images"):
        captions = row["caption"] if isinstance(row["caption"], list) else [row["caption"]]
        for caption in captions:
            assert set(caption.split()) <= words, caption


def shape_mask(frame: np.ndarray, colour: str) -> np.ndarray:
    distance = np.abs(frame.astype(int) - np.array(COLOURS[colour])).sum(-1)
    return distance < 90


@pytest.mark.parametrize("motion", ["left", "right", "up", "down", "growing", "shrinking", "rotating", "still"])
def test_the_captioned_motion_happens_in_the_decoded_video(tmp_path: Path, motion: str) -> None:
    from indexer.media.encode import encode_frames
    from indexer.synthetic.attributes import ShapeSpec

    size = None if motion in ("growing", "shrinking") else "large"
    spec = ShapeSpec("orange", "triangle", motion, size)
    frames = render_video([spec], "navy", 160, 120, 20, np.random.default_rng(0))
    path = encode_frames(frames, tmp_path / f"{motion}.mp4", 10)
    first, last = decode(DecodeRequest(str(path), num_frames=2, mode="middle", spans=((0.0, 0.05), (1.9, 2.0)))).spans
    a, b = shape_mask(first.frames[0], "orange"), shape_mask(last.frames[0], "orange")
    (ya, xa), (yb, xb) = np.argwhere(a).mean(0), np.argwhere(b).mean(0)
    moved_x, moved_y = (xb - xa) / 160, (yb - ya) / 120
    expect = {
        "left": moved_x < -0.3,
        "right": moved_x > 0.3,
        "up": moved_y < -0.3,
        "down": moved_y > 0.3,
        "growing": b.sum() > 3 * a.sum(),
        "shrinking": a.sum() > 3 * b.sum(),
        "rotating": (a & b).sum() / (a | b).sum() < 0.8,
        "still": abs(moved_x) < 0.02 and abs(moved_y) < 0.02 and (a & b).sum() / (a | b).sum() > 0.9,
    }
    assert expect[motion], (moved_x, moved_y, a.sum(), b.sum())


def test_long_videos_cut_where_the_annotations_say(benchmark: Path) -> None:
    scenes = rows(benchmark, "long_scenes")
    assert len(scenes) >= 3 and len({s["video"] for s in scenes}) == 1
    from indexer.media.segment import detect_cuts

    cuts = detect_cuts(str(benchmark / scenes[0]["video"]), threshold=0.2)
    for scene in scenes[1:]:
        background_changed = (
            scene["attributes"]["background"] != scenes[scenes.index(scene) - 1]["attributes"]["background"]
        )
        if background_changed:
            assert min(abs(cut - scene["start"]) for cut in cuts) < 0.15, (scene["start"], cuts)


def test_every_shape_colour_stands_out_from_every_background() -> None:
    for colour, background in itertools.product(COLOURS.values(), BACKGROUNDS.values()):
        assert np.abs(np.array(colour) - np.array(background)).sum() > 150


def test_the_attribute_probe_reads_what_the_features_carry_and_runs_on_a_set(
    benchmark: Path, tiny_model_dir: Path
) -> None:
    from benchmarks.attribute_probe import probe_accuracy

    generator = torch.Generator().manual_seed(0)
    values = [("circle", "star", "square")[i % 3] for i in range(90)]
    carried = torch.randn(90, 16, generator=generator)
    carried[torch.arange(90), [("circle", "star", "square").index(v) for v in values]] += 3.0  # one direction each
    assert probe_accuracy(carried, values) > 0.9
    assert probe_accuracy(torch.randn(90, 16, generator=generator), values) < 0.6  # chance is 1/3
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "attribute_probe.py"
    command = [sys.executable, str(script), str(tiny_model_dir), "--data", str(benchmark), "--pairs", "4"]
    report = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    for attribute in ("shape", "colour", "motion"):
        assert f"linear probe of {attribute:6} from ITC" in report
