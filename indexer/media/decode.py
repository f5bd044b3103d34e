"""Decode sampled frames of media files: decord (or torchcodec) first, the ffmpeg command line as the fallback, PIL
for images.

One `DecodeRequest` covers one file and any number of time spans (a video's clips), so a file is opened once.
Each span yields `num_frames` frames chosen by `indexer.media.sampling` (the official sampling), turned upright
(rotation honoured), and squash-resized for the model by `mplug2.resize` when a size is given. A span that cannot be
decoded (damage in the middle of a file) gets its own error; the other spans of the file still decode.

This module runs inside the decode worker processes (`indexer.media.workers`): it must not import torch at module
level. Only the torchcodec backend imports it (torchcodec is built on torch), in the worker, on first use.
"""

from __future__ import annotations

import io
import logging
import os
import queue
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from indexer.media.errors import (
    CorruptMediaError,
    MediaError,
    TooLargeError,
    UnsupportedCodecError,
)
from indexer.media.probe import MediaInfo, MediaKind, probe
from indexer.media.sampling import SampleMode, select_frames
from mplug2.resize import Interpolation, resize_frames

if TYPE_CHECKING:
    from mplug2.config import MPLUG2Config

log = logging.getLogger(__name__)

# auto: decord, then the ffmpeg CLI; torchcodec: torchcodec (NVDEC on a GPU), then the ffmpeg CLI; others alone.
Backend = Literal["auto", "decord", "ffmpeg", "torchcodec"]
FALLBACKS: dict[str, list[str]] = {
    "auto": ["decord", "ffmpeg"],
    "torchcodec": ["torchcodec", "ffmpeg"],
    "decord": ["decord"],
    "ffmpeg": ["ffmpeg"],
}

# Frames wider or taller than this are downscaled by the decoder itself (aspect kept) before anything else touches
# them, so an 8K file costs what a 1080p one does.
DEFAULT_MAX_SIDE = 1920
# Pictures beyond this many pixels are refused outright (decompression bombs, absurd sizes).
DEFAULT_MAX_PIXELS = 16384 * 16384


@dataclass(frozen=True)
class DecodeRequest:
    """Frames to decode from one file. `spans` are [start, end) in seconds; `end=None` runs to the end."""

    path: str
    spans: tuple[tuple[float, float | None], ...] = ((0.0, None),)
    num_frames: int = 8
    mode: SampleMode = "middle"
    size: int | None = None
    interpolation: Interpolation = "nearest"
    seed: int | None = None
    thumbnail_side: int | None = None
    max_side: int = DEFAULT_MAX_SIDE
    backend: Backend = "auto"
    info: MediaInfo | None = None  # the probe result when the caller has it, saving a second ffprobe
    tag: object = None  # the caller's own key, returned untouched


def model_request(
    config: MPLUG2Config,
    path: str,
    kind: str,
    spans: tuple[tuple[float, float | None], ...] = ((0.0, None),),
    *,
    num_frames: int | None = None,
    thumbnail_side: int | None = None,
    backend: Backend = "auto",
    info: MediaInfo | None = None,
    tag: object = None,
) -> DecodeRequest:
    """The request that decodes `spans` of a `kind` ("video" | "image") file the way `config`'s model was trained
    to see it: its frame count (one frame for a picture), its input size and its per-kind resize interpolation."""
    video = kind == "video"
    preprocess = config.preprocess
    return DecodeRequest(
        path,
        spans=spans,
        num_frames=(num_frames or preprocess.num_frames) if video else 1,
        size=config.image_size,
        interpolation=preprocess.video_interpolation if video else preprocess.image_interpolation,  # type: ignore[arg-type]
        thumbnail_side=thumbnail_side,
        backend=backend,
        info=info,
        tag=tag,
    )


@dataclass
class DecodedSpan:
    frames: np.ndarray | None  # uint8 [T, H, W, 3], or None when this span failed
    timestamps: list[float] = field(default_factory=list)
    thumbnail: bytes | None = None
    error: MediaError | None = None


@dataclass
class DecodeResult:
    request: DecodeRequest
    info: MediaInfo
    spans: list[DecodedSpan]
    backend: str
    seconds: float = 0.0  # time spent decoding (in the worker)


def decode(request: DecodeRequest) -> DecodeResult:
    """Decode every span of `request` in this process. Raises `MediaError` when the file as a whole is unusable."""
    started = time.perf_counter()
    result = _decode(request)
    result.seconds = time.perf_counter() - started
    return result


def _decode(request: DecodeRequest) -> DecodeResult:
    info = request.info or probe(request.path)
    if info.width * info.height > DEFAULT_MAX_PIXELS:
        raise TooLargeError(request.path, f"{info.width}x{info.height} pixels is beyond the {DEFAULT_MAX_PIXELS} limit")
    rng = np.random.default_rng(request.seed)
    if info.kind is MediaKind.IMAGE:
        frame = _decode_image(request.path, request.max_side)
        spans = [_finish_span(request, frame[None], [0.0], rng) for _ in request.spans]
        return DecodeResult(request, info, spans, "pil")
    if info.frame_count <= 0:
        raise CorruptMediaError(request.path, "the video stream holds no frames")
    backends = FALLBACKS[request.backend]
    readers = _LazyReaders(request, info, backends)
    spans = [_decode_span(readers, request, span, rng) for span in request.spans]
    if all(span.error is not None for span in spans):
        raise spans[0].error
    return DecodeResult(request, info, spans, "+".join(readers.used) or backends[0])


class _LazyReaders:
    """Opens each backend on first need, so decord's failures (AV1, some VP9, some rotated sizes, damaged
    regions) cost a fallback per span rather than per file."""

    def __init__(self, request: DecodeRequest, info: MediaInfo, backends: list[str]) -> None:
        self.request, self.info, self.backends = request, info, backends
        self._opened: dict[str, _Reader | MediaError] = {}
        self.used: list[str] = []

    def get(self, backend: str) -> _Reader | MediaError:
        if backend not in self._opened:
            try:
                reader_type = _READERS[backend]
                self._opened[backend] = reader_type(self.request, self.info)
            except MediaError as error:
                log.info("%s cannot open %s (%s)", backend, self.request.path, error.reason)
                self._opened[backend] = error
        return self._opened[backend]


def _decode_span(readers: _LazyReaders, request: DecodeRequest, span, rng) -> DecodedSpan:
    start, end = span
    failure: MediaError | None = None
    for backend in readers.backends:
        reader = readers.get(backend)
        if isinstance(reader, MediaError):
            failure = reader
            continue
        try:
            indices = select_frames(reader.timestamps, start, end, request.num_frames, request.mode, rng)
            frames = reader.read(indices)
        except MediaError as error:
            log.info("%s failed on %s [%s, %s): %s", backend, request.path, start, end, error.reason)
            failure = error
            continue
        if backend not in readers.used:
            readers.used.append(backend)
        return _finish_span(request, frames, [float(reader.timestamps[i]) for i in indices], rng)
    return DecodedSpan(frames=None, error=failure)


def _finish_span(request: DecodeRequest, frames: np.ndarray, timestamps: list[float], rng) -> DecodedSpan:
    if len(frames) < request.num_frames:  # an image, or a short read: repeat the last frame, as the official loader
        frames = np.concatenate([frames, np.repeat(frames[-1:], request.num_frames - len(frames), axis=0)])
        timestamps = timestamps + [timestamps[-1]] * (request.num_frames - len(timestamps))
    thumbnail = make_thumbnail(frames[len(frames) // 2], request.thumbnail_side) if request.thumbnail_side else None
    if request.size is not None:
        frames = resize_frames(frames, request.size, request.interpolation)
    return DecodedSpan(frames=frames, timestamps=timestamps, thumbnail=thumbnail)


def make_thumbnail(frame: np.ndarray, max_side: int, quality: int = 80) -> bytes:
    """A JPEG of `frame` [H, W, 3] whose longer side is at most `max_side` pixels."""
    from PIL import Image

    image = Image.fromarray(frame)
    image.thumbnail((max_side, max_side), Image.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _decode_image(path: str, max_side: int) -> np.ndarray:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.draft("RGB", (max_side, max_side))  # JPEG: let the decoder downscale by 1/2..1/8 for free
            image = ImageOps.exif_transpose(image).convert("RGB")
            if max(image.size) > max_side:
                image.thumbnail((max_side, max_side), Image.BICUBIC)
            return np.asarray(image)
    except Image.DecompressionBombError as error:
        raise TooLargeError(path, str(error)) from None
    except UnidentifiedImageError:
        raise UnsupportedCodecError(path, "PIL cannot read this image format") from None
    except OSError as error:
        raise CorruptMediaError(path, f"image data is damaged ({error})") from None


def _capped_size(info: MediaInfo, max_side: int) -> tuple[int, int] | None:
    """(width, height) to decode at when the picture is larger than `max_side`, else None (native size)."""
    longest = max(info.width, info.height)
    if longest <= max_side:
        return None
    scale = max_side / longest
    return max(2, round(info.width * scale)), max(2, round(info.height * scale))


class _DecordReader:
    """decord: fast random access, applies rotation. Fails on AV1 and some VP9 files (then ffmpeg takes over)."""

    def __init__(self, request: DecodeRequest, info: MediaInfo) -> None:
        self.path = request.path
        try:
            import decord
        except ImportError:
            raise UnsupportedCodecError(self.path, "decord is not installed") from None
        self._error_type = decord.DECORDError
        capped = _capped_size(info, request.max_side)
        width, height = capped or (-1, -1)
        try:
            self._reader = decord.VideoReader(self.path, ctx=decord.cpu(0), width=width, height=height, num_threads=1)
            count = len(self._reader)
            if count == 0:
                raise CorruptMediaError(self.path, "decord found no frames")
            self.timestamps = self._reader.get_frame_timestamp(np.arange(count))[:, 0].astype(np.float64)
        except (self._error_type, RuntimeError) as error:
            raise CorruptMediaError(self.path, f"decord cannot open the file ({_first_line(error)})") from None

    def read(self, indices: np.ndarray) -> np.ndarray:
        try:
            return self._reader.get_batch(list(map(int, indices))).asnumpy()
        except (self._error_type, RuntimeError) as error:
            raise CorruptMediaError(self.path, f"decord cannot decode frames ({_first_line(error)})") from None


class _FfmpegReader:
    """The ffmpeg command line (built with ffmpeg-python): decodes anything ffmpeg can, rotation applied.

    Frame times come from the packets (ffprobe, no decoding); frames are then streamed from one ffmpeg process per
    span, keeping only the frame on screen at each wanted time, so memory stays at a few frames whatever the length.
    """

    _PTS = re.compile(r"pts_time:\s*(-?[0-9.]+)")

    def __init__(self, request: DecodeRequest, info: MediaInfo) -> None:
        if shutil.which("ffmpeg") is None:
            raise UnsupportedCodecError(request.path, "ffmpeg is not installed")
        self.path = request.path
        self.info = info
        self.size = _capped_size(info, request.max_side) or (info.width, info.height)
        self.timestamps = packet_times(self.path)
        if len(self.timestamps) == 0:
            raise CorruptMediaError(self.path, "no video packets found")

    def read(self, indices: np.ndarray) -> np.ndarray:
        import ffmpeg

        targets = self.timestamps[indices]
        first, last = float(targets.min()), float(targets.max())
        width, height = self.size
        stream = ffmpeg.input(self.path, ss=max(first - 0.001, 0.0), copyts=None)
        stream = stream.video.filter("scale", width, height).filter("showinfo")
        cmd = (
            stream.output("pipe:", format="rawvideo", pix_fmt="rgb24", to=last + 0.001, fps_mode="passthrough")
            .global_args("-nostdin", "-hide_banner", "-loglevel", "info")
            .compile()
        )
        frames, times, errors = self._stream(cmd, width, height, targets)
        if not frames:
            raise CorruptMediaError(
                self.path,
                f"ffmpeg decoded no frames between {first:.2f}s and {last:.2f}s"
                + (f" ({errors[-1]})" if errors else ""),
            )
        picked = self._on_screen(targets, np.asarray(times))
        if errors and len(set(picked.tolist())) < max(1, len(set(indices.tolist())) // 2):
            raise CorruptMediaError(self.path, f"damaged video data near {first:.2f}s ({errors[-1]})")
        return np.stack([frames[i] for i in picked])

    def _stream(self, cmd: list[str], width: int, height: int, targets: np.ndarray):
        frame_bytes = width * height * 3
        process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        pts_queue: queue.Queue[float | None] = queue.Queue()
        errors: list[str] = []
        threading.Thread(target=self._read_stderr, args=(process.stderr, pts_queue, errors), daemon=True).start()
        kept_frames: list[np.ndarray] = []
        kept_times: list[float] = []
        previous: tuple[float, np.ndarray] | None = None
        remaining = sorted(set(targets.tolist()))
        try:
            while remaining:
                chunk = process.stdout.read(frame_bytes)
                if len(chunk) < frame_bytes:
                    break
                pts = pts_queue.get(timeout=60)
                if pts is None:
                    break
                frame = np.frombuffer(chunk, np.uint8).reshape(height, width, 3)
                # Keep the frame on screen at each target: the last one whose time is <= the target.
                while remaining and pts > remaining[0] + 1e-4 and previous is not None:
                    kept_times.append(previous[0])
                    kept_frames.append(previous[1])
                    remaining.pop(0)
                previous = (pts, frame)
            if previous is not None and (not kept_times or kept_times[-1] != previous[0]):
                kept_times.append(previous[0])
                kept_frames.append(previous[1])
        finally:
            process.kill()
            process.wait()
        return kept_frames, kept_times, errors

    def _read_stderr(self, stderr, pts_queue: queue.Queue, errors: list[str]) -> None:
        for raw in stderr:
            line = raw.decode(errors="replace")
            if "showinfo" in line:
                match = self._PTS.search(line)
                if match:
                    pts_queue.put(float(match.group(1)))
            elif "error" in line.lower() or "invalid" in line.lower() or "corrupt" in line.lower():
                errors.append(line.strip())
        pts_queue.put(None)

    @staticmethod
    def _on_screen(targets: np.ndarray, times: np.ndarray) -> np.ndarray:
        """Index into `times` of the frame on screen at each target (the last one at or before it)."""
        positions = np.searchsorted(times, targets + 1e-4, side="right") - 1
        return np.clip(positions, 0, len(times) - 1)


def packet_times(path: str) -> np.ndarray:
    """Presentation times of every video frame, from the packets (ffprobe, no decoding), sorted."""
    cmd = ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time", "-of", "csv=p=0"]
    result = subprocess.run(
        [*cmd, "--", path], capture_output=True, text=True, timeout=120, check=False, start_new_session=True
    )
    times = []
    for line in result.stdout.splitlines():
        value = line.strip().strip(",")
        if value and value != "N/A":
            times.append(float(value))
    return np.unique(np.asarray(times, dtype=np.float64))  # decode order -> presentation order


class _TorchcodecReader:
    """torchcodec: FFmpeg's decoders driven from C++, on the GPU's NVDEC when CUDA is available, else on the CPU.

    On the CPU its frames are bit-identical to decord's (both convert with FFmpeg's swscale); it also reads AV1 and the
    VP9 files decord cannot, and applies rotation. Frame times come from the packets, as for the ffmpeg reader, so the
    sampling (and VFR handling) is the same for every backend; frames are then fetched by the time they are on screen.
    """

    def __init__(self, request: DecodeRequest, info: MediaInfo) -> None:
        self.path = request.path
        try:
            from torchcodec.decoders import VideoDecoder
            from torchcodec.transforms import Resize
        except ImportError:
            raise UnsupportedCodecError(self.path, "torchcodec is not installed (pip install torchcodec)") from None
        except (OSError, RuntimeError) as error:  # it loads FFmpeg's shared libraries at import
            raise UnsupportedCodecError(self.path, f"torchcodec cannot load ({_first_line(error)})") from None
        capped = _capped_size(info, request.max_side)
        transforms = [Resize((capped[1], capped[0]))] if capped else None
        try:
            self._decoder = VideoDecoder(
                self.path,
                dimension_order="NHWC",
                device=torchcodec_device(),
                seek_mode="exact",  # scans the packets once: exact times and counts, like decord
                transforms=transforms,
            )
        except (RuntimeError, ValueError) as error:
            raise CorruptMediaError(self.path, f"torchcodec cannot open the file ({_first_line(error)})") from None
        self.timestamps = packet_times(self.path)
        if len(self.timestamps) == 0:
            raise CorruptMediaError(self.path, "no video packets found")

    def read(self, indices: np.ndarray) -> np.ndarray:
        try:
            batch = self._decoder.get_frames_played_at([float(t) for t in self.timestamps[indices]])
        except (RuntimeError, ValueError, IndexError) as error:
            raise CorruptMediaError(self.path, f"torchcodec cannot decode frames ({_first_line(error)})") from None
        return batch.data.cpu().numpy()  # off the GPU: the frames travel to the encoder by pipe or object store


def torchcodec_device() -> str:
    """'cuda' when torch sees a GPU (NVDEC decoding), else 'cpu'. MPLUG2_SEARCH_DECODE_DEVICE overrides it."""
    override = os.environ.get("MPLUG2_SEARCH_DECODE_DEVICE")
    if override:
        return override
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


_Reader = _DecordReader | _FfmpegReader | _TorchcodecReader
_READERS: dict[str, type] = {"decord": _DecordReader, "ffmpeg": _FfmpegReader, "torchcodec": _TorchcodecReader}


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__
