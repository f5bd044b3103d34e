"""What to decode from one file: `DecodeRequest` (spans, frames per span, size, backend), and `model_request`, the
one recipe for a request that decodes a file the way a model was trained to see it. A record of its own so that the
decoder (`decode.py`) and the frame readers (`readers.py`) both import it without importing each other."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from indexer.media.probe import MediaInfo
from indexer.media.sampling import SampleMode
from mplug2.resize import Interpolation

if TYPE_CHECKING:
    from mplug2.config import MPLUG2Config

# auto: decord, then the ffmpeg CLI; torchcodec: torchcodec (NVDEC on a GPU), then the ffmpeg CLI; others alone.
Backend = Literal["auto", "decord", "ffmpeg", "torchcodec"]

# Frames wider or taller than this are downscaled by the decoder itself (aspect kept) before anything else touches
# them, so an 8K file costs what a 1080p one does.
DEFAULT_MAX_SIDE = 1920


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
