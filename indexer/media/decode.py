"""Decode sampled frames of media files: decord (or torchcodec) first, the ffmpeg command line as the fallback, PIL
for images.

One `DecodeRequest` covers one file and any number of time spans (a video's clips), so a file is opened once.
Each span yields `num_frames` frames chosen by `indexer.media.sampling` (the official sampling), turned upright
(rotation honoured), and squash-resized for the model by `mplug2.resize` when a size is given. A span that cannot be
decoded (damage in the middle of a file) gets its own error; the other spans of the file still decode.

The video readers (decord, ffmpeg, torchcodec) are in `indexer.media.readers`. This module runs inside the decode
worker processes (`indexer.media.workers`): it must not import torch at module level. Only the torchcodec backend
imports it (torchcodec is built on torch), in the worker, on first use.
"""

from __future__ import annotations

import io
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from indexer.media.errors import (
    CorruptMediaError,
    MediaError,
    TooLargeError,
    UnsupportedCodecError,
)
from indexer.media.probe import MediaInfo, MediaKind, probe
from indexer.media.readers import READERS, Reader
from indexer.media.request import DecodeRequest
from indexer.media.sampling import select_frames
from mplug2.resize import resize_frames

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

# auto: decord, then the ffmpeg CLI; torchcodec: torchcodec (NVDEC on a GPU), then the ffmpeg CLI; others alone.
FALLBACKS: dict[str, list[str]] = {
    "auto": ["decord", "ffmpeg"],
    "torchcodec": ["torchcodec", "ffmpeg"],
    "decord": ["decord"],
    "ffmpeg": ["ffmpeg"],
}

# Pictures beyond this many pixels are refused outright (decompression bombs, absurd sizes).
DEFAULT_MAX_PIXELS = 16384 * 16384


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
        self._opened: dict[str, Reader | MediaError] = {}
        self.used: list[str] = []

    def get(self, backend: str) -> Reader | MediaError:
        if backend not in self._opened:
            try:
                reader_type = READERS[backend]
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
