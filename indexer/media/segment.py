"""Cut a video into clips: fixed windows, or shots found by ffmpeg's scene detection, within min/max lengths.

Shot detection decodes the whole video, so it runs where decoding runs: in the killable worker pool, as a
`SegmentRequest` (the pool gives it a time-out per minute of video and the same memory limit as decoding).
"""

from __future__ import annotations

import itertools
import math
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from typing import Literal

from indexer.media.errors import CorruptMediaError, DecodeTimeoutError


@dataclass(frozen=True)
class Span:
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class SegmentPolicy:
    """How videos become clips. Windows: `window` seconds every `stride` seconds. Shots: cut at scene changes whose
    ffmpeg scene score exceeds `scene_threshold`. Either way no clip is shorter than `min_len` (unless the video
    is) nor longer than `max_len`."""

    mode: Literal["fixed", "shots"] = "fixed"
    window: float = 10.0
    stride: float | None = None  # None: back-to-back windows (stride = window)
    min_len: float = 2.0
    max_len: float = 30.0
    scene_threshold: float = 0.3


def fixed_windows(duration: float, window: float, stride: float | None = None, min_len: float = 0.0) -> list[Span]:
    """Windows [k*stride, k*stride + window) covering [0, duration); a short tail joins the window before it."""
    if duration <= 0:
        return [Span(0.0, 0.0)]
    stride = stride or window
    if window <= 0 or stride <= 0:
        raise ValueError("window and stride must be positive")
    if duration <= window:
        return [Span(0.0, duration)]
    spans: list[Span] = []
    start = 0.0
    while start < duration - 1e-9:
        end = min(start + window, duration)
        if spans and end - start < min_len and end >= spans[-1].end:
            spans[-1] = Span(spans[-1].start, end)  # the tail is too short to stand alone
            break
        spans.append(Span(start, end))
        if end >= duration:
            break
        start += stride
    return spans


def spans_from_cuts(cuts: list[float], duration: float, min_len: float, max_len: float) -> list[Span]:
    """Shots between the cut times, short shots merged into a neighbour, long ones split into equal parts."""
    points = [0.0, *sorted(t for t in cuts if 0.0 < t < duration), duration]
    shots = [Span(a, b) for a, b in itertools.pairwise(points) if b > a]
    merged: list[Span] = []
    for shot in shots:
        if merged and (shot.duration < min_len or merged[-1].duration < min_len):
            merged[-1] = Span(merged[-1].start, shot.end)
        else:
            merged.append(shot)
    spans: list[Span] = []
    for shot in merged:
        parts = max(1, math.ceil(shot.duration / max_len - 1e-9))
        step = shot.duration / parts
        spans.extend(Span(shot.start + i * step, shot.start + (i + 1) * step) for i in range(parts))
    return spans or [Span(0.0, duration)]


_PTS = re.compile(r"pts_time:\s*([0-9.]+)")


def detect_cuts(path: str, threshold: float = 0.3, timeout_s: float = 600.0) -> list[float]:
    """Times (seconds) where ffmpeg's scene-change score exceeds `threshold`, decoded at low resolution."""
    if shutil.which("ffmpeg") is None:
        raise CorruptMediaError(path, "ffmpeg is not installed, so shots cannot be detected")
    cmd = [
        "ffmpeg",
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "info",
        "-i",
        path,
        "-an",
        "-vf",
        f"scale=160:-2,select='gt(scene,{threshold})',showinfo",
        "-f",
        "null",
        "-",
    ]
    try:
        result = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout_s, check=False, start_new_session=True
        )
    except subprocess.TimeoutExpired:
        raise DecodeTimeoutError(path, f"shot detection took longer than {timeout_s:.0f} s") from None
    return [
        float(m.group(1)) for line in result.stderr.splitlines() if "showinfo" in line for m in [_PTS.search(line)] if m
    ]


def policy_windows(duration: float, policy: SegmentPolicy) -> list[Span]:
    """The fixed windows of a video under `policy` (arithmetic only: nothing is decoded)."""
    return fixed_windows(duration, min(policy.window, policy.max_len), policy.stride, policy.min_len)


def segment_video(path: str, duration: float, policy: SegmentPolicy) -> list[Span]:
    """The clips of a video of `duration` seconds under `policy` (shots: decodes the video, see `SegmentRequest`)."""
    if policy.mode == "shots":
        return spans_from_cuts(detect_cuts(path, policy.scene_threshold), duration, policy.min_len, policy.max_len)
    return policy_windows(duration, policy)


# A shot-detection request gets the pool's per-clip time-out once per this many seconds of video (ffmpeg's scene
# filter at 160 px runs far faster than real time; a minute of video per time-out leaves a wide margin).
SECONDS_PER_TIMEOUT = 60.0


@dataclass(frozen=True)
class SegmentRequest:
    """Find a video's clips under `policy` in a decode worker. `tag` is the caller's own key, returned untouched."""

    path: str
    duration: float
    policy: SegmentPolicy
    tag: object = None

    @property
    def timeouts(self) -> int:
        """How many of the pool's per-clip time-outs this request may take."""
        return max(1, math.ceil(self.duration / SECONDS_PER_TIMEOUT))


@dataclass
class SegmentResult:
    request: SegmentRequest
    spans: list[Span] = field(default_factory=list)
    seconds: float = 0.0


def segment(request: SegmentRequest) -> SegmentResult:
    """Run a `SegmentRequest` in this process (the worker's side)."""
    started = time.perf_counter()
    spans = segment_video(request.path, request.duration, request.policy)
    return SegmentResult(request, spans, time.perf_counter() - started)
