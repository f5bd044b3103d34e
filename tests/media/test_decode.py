"""Decoding real files: the right frames, the right way up, by both decoders; typed errors for the rest."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.media.corpus import CorpusFile, frame_blue
from indexer.media.decode import decode
from indexer.media.errors import MediaError
from indexer.media.request import DecodeRequest

GOOD = ["h264.mp4", "hevc.mp4", "vp9.webm", "mjpeg.avi", "vidéo ☃ 東京.mp4"]


def assert_pattern(frames: np.ndarray, frame_indices: list[int]) -> None:
    """Red band left, green band top, blue level of each sampled frame index (lossy codecs: some tolerance)."""
    for frame, index in zip(frames, frame_indices, strict=True):
        height, width, _ = frame.shape
        centre = frame[height // 2 :, width // 2 :].reshape(-1, 3).mean(0)
        assert abs(centre[2] - frame_blue(index)) < 12, (centre, index)
        assert frame[height // 2 :, : width // 8, 0].mean() > 180, "red band on the left"
        assert frame[: height // 8, width // 2 :, 1].mean() > 180, "green band on top"


@pytest.mark.parametrize("backend", ["decord", "ffmpeg"])
@pytest.mark.parametrize("name", GOOD)
def test_both_decoders_return_the_official_middle_frames(
    corpus: dict[str, CorpusFile], name: str, backend: str
) -> None:
    result = decode(DecodeRequest(str(corpus[name].path), num_frames=8, backend=backend))
    (span,) = result.spans
    # 20 frames in 8 equal segments: bounds linspace(0, 20, 9).astype(int) = 0 2 5 7 10 12 15 17 20 -> middles:
    assert [round(t * 10) for t in span.timestamps] == [1, 3, 6, 8, 11, 13, 16, 18]
    assert_pattern(span.frames, [1, 3, 6, 8, 11, 13, 16, 18])


@pytest.mark.parametrize("name", ["av1.mkv", "vp9-realtime.webm"])
def test_files_decord_cannot_read_fall_back_to_ffmpeg(corpus: dict[str, CorpusFile], name: str) -> None:
    if name not in corpus:
        pytest.skip(f"this ffmpeg build cannot encode {name}")
    result = decode(DecodeRequest(str(corpus[name].path), num_frames=4))
    assert_pattern(result.spans[0].frames, [round(t * 10) for t in result.spans[0].timestamps])


@pytest.mark.parametrize("backend", ["auto", "ffmpeg"])  # decord alone fails on this size: auto falls back
def test_rotation_is_honoured(corpus: dict[str, CorpusFile], backend: str) -> None:
    (span,) = decode(DecodeRequest(str(corpus["rotated-90.mp4"].path), num_frames=2, backend=backend)).spans
    frame = span.frames[0]
    assert frame.shape == (96, 48, 3)
    # Stored with green on top and red on the left; turned 90 degrees counter-clockwise for display, the green
    # band runs down the left side and the red band along the bottom.
    assert frame[:, :6, 1].mean() > 180
    assert frame[-6:, 12:, 0].mean() > 180
    assert frame[:6, 24:, 0].mean() < 60


@pytest.mark.parametrize("backend", ["decord", "ffmpeg"])
def test_variable_frame_rate_is_sampled_by_time(corpus: dict[str, CorpusFile], backend: str) -> None:
    # Frames at 0.0..0.9 s (every 0.1 s), then 1.0, 1.5, 2.0, 2.5. Four equal time segments of [0, 3):
    # middles 0.375, 1.125, 1.875, 2.625 -> on screen: frame 3 (0.3 s), 10 (1.0 s), 11 (1.5 s), 13 (2.5 s).
    request = DecodeRequest(str(corpus["vfr.mp4"].path), spans=((0.0, 3.0),), num_frames=4, backend=backend)
    (span,) = decode(request).spans
    assert span.timestamps == pytest.approx([0.3, 1.0, 1.5, 2.5], abs=0.01)
    assert_pattern(span.frames, [3, 10, 11, 13])


def test_spans_resize_and_thumbnail(corpus: dict[str, CorpusFile]) -> None:
    request = DecodeRequest(
        str(corpus["h264.mp4"].path), spans=((0.0, 1.0), (1.0, 2.0)), num_frames=4, size=32, thumbnail_side=48
    )
    first, second = decode(request).spans
    assert first.frames.shape == second.frames.shape == (4, 32, 32, 3)
    assert max(first.timestamps) < 1.0 <= min(second.timestamps)
    from io import BytesIO

    from PIL import Image

    thumbnail = Image.open(BytesIO(first.thumbnail))
    assert thumbnail.format == "JPEG" and max(thumbnail.size) == 48


def test_an_image_is_one_frame_repeated(corpus: dict[str, CorpusFile]) -> None:
    (span,) = decode(DecodeRequest(str(corpus["pattern.png"].path), num_frames=3)).spans
    assert span.frames.shape == (3, 60, 90, 3)
    assert_pattern(span.frames[:1], [0])


def test_a_file_damaged_in_the_middle_still_yields_the_clips_around_the_damage(corpus: dict[str, CorpusFile]) -> None:
    spans = ((0.0, 3.0), (3.0, 6.0), (6.0, 9.0), (9.0, 12.0))
    # decord alone sometimes fails after the damage (it depends on its decoder state): "auto" retries such spans
    # with ffmpeg, and that is what the indexer uses.
    for backend in ("auto", "ffmpeg"):
        result = decode(
            DecodeRequest(str(corpus["garbage-in-middle.mp4"].path), spans=spans, num_frames=4, backend=backend)
        )
        first, last = result.spans[0], result.spans[-1]
        assert first.error is None and last.error is None, backend
        assert_pattern(first.frames, [round(t * 10) for t in first.timestamps])
        assert_pattern(last.frames, [round(t * 10) for t in last.timestamps])


def test_truncated_tail_keeps_the_early_clip(corpus: dict[str, CorpusFile]) -> None:
    result = decode(DecodeRequest(str(corpus["truncated-after-moov.mp4"].path), spans=((0.0, 1.0),), num_frames=4))
    assert result.spans[0].error is None
    assert_pattern(result.spans[0].frames, [round(t * 10) for t in result.spans[0].timestamps])


def test_8k_is_decoded_downscaled(corpus: dict[str, CorpusFile]) -> None:
    (span,) = decode(DecodeRequest(str(corpus["8k.mp4"].path), num_frames=2)).spans
    assert span.frames.shape == (2, 1080, 1920, 3)


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("zero-bytes.mp4", "empty"),
        ("notes.mp4", "not_media"),
        ("audio-only.mp4", "not_media"),
        ("truncated-before-moov.mp4", "corrupt"),
        ("loop-a.mp4", "unreadable"),
    ],
)
def test_bad_files_raise_typed_errors_naming_the_file(corpus: dict[str, CorpusFile], name: str, code: str) -> None:
    with pytest.raises(MediaError) as raised:
        decode(DecodeRequest(str(corpus[name].path)))
    assert raised.value.code == code
    assert name in str(raised.value)
