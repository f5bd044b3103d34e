"""Clip segmentation: fixed windows, and shots from ffmpeg scene detection on a real two-scene file."""

import itertools
from pathlib import Path

import numpy as np
import pytest

from indexer.media.encode import encode_frames
from indexer.media.segment import SegmentPolicy, Span, detect_cuts, fixed_windows, segment_video, spans_from_cuts


def test_fixed_windows() -> None:
    assert fixed_windows(25.0, 10.0) == [Span(0, 10), Span(10, 20), Span(20, 25)]
    assert fixed_windows(21.0, 10.0, min_len=2.0) == [Span(0, 10), Span(10, 21)]  # a 1 s tail joins its neighbour
    assert fixed_windows(4.0, 10.0) == [Span(0, 4)]  # a short video is one clip
    assert fixed_windows(20.0, 10.0, stride=5.0) == [Span(0, 10), Span(5, 15), Span(10, 20)]


def test_spans_from_cuts_merges_short_shots_and_splits_long_ones() -> None:
    spans = spans_from_cuts([1.0, 10.0, 10.5], duration=80.0, min_len=2.0, max_len=30.0)
    # The 1 s opening shot merges with the next; the 0.5 s shot at 10 s joins the one before it.
    assert spans[0] == Span(0.0, 10.5)
    assert len(spans) == 4  # 69.5 s left: split into three equal parts of at most 30 s
    assert all(span.duration <= 30.0 + 1e-9 for span in spans)
    assert spans[-1].end == 80.0
    assert all(a.end == pytest.approx(b.start) for a, b in itertools.pairwise(spans))


def test_shot_detection_finds_a_hard_cut(tmp_path: Path) -> None:
    red = [np.full((48, 64, 3), (220, 30, 30), np.uint8)] * 20
    blue = [np.full((48, 64, 3), (30, 30, 220), np.uint8)] * 30
    path = encode_frames(red + blue, tmp_path / "two-scenes.mp4", fps=10)
    cuts = detect_cuts(str(path))
    assert cuts == [pytest.approx(2.0, abs=0.11)]
    spans = segment_video(str(path), 5.0, SegmentPolicy(mode="shots", min_len=1.0))
    assert [round(s.start, 1) for s in spans] == [0.0, 2.0]
