"""Probe a path: video, image or neither (decided by content, never by extension), with its stream facts.

ffprobe is the primary source. It runs as a subprocess with a timeout rather than through ffmpeg-python's `probe`,
which has no timeout and would hang the run on a pathological file, and in its own session, so the Ctrl-C meant
for an index run cannot kill it and make a good file look broken. PyAV (videos) and PIL (images) are the fallback
when ffprobe is missing or fails on a file that they can still read.
"""

from __future__ import annotations

import enum
import errno
import json
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from stat import S_ISREG

from indexer.media.errors import (
    CorruptMediaError,
    EmptyFileError,
    FileMissingError,
    MediaError,
    NotMediaError,
    UnreadableFileError,
)

log = logging.getLogger(__name__)

# ffprobe format names of single-picture containers; everything else with a video stream is a video.
_IMAGE_FORMATS = {"image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe", "gif_pipe", "jpegls_pipe"}
_IMAGE_FORMATS_MULTI_FRAME = {"gif", "gif_pipe", "webp_pipe"}  # animated formats: a video when they have > 1 frame


class MediaKind(str, enum.Enum):
    VIDEO = "video"
    IMAGE = "image"


@dataclass(frozen=True)
class MediaInfo:
    """What the rest of the program needs to know about a media file. Sizes are as displayed (after rotation)."""

    path: str
    kind: MediaKind
    width: int
    height: int
    codec: str
    duration: float  # seconds; 0.0 for images
    fps: float  # average frame rate; 0.0 for images
    frame_count: int  # 1 for images; estimated from duration x fps when the container does not say
    rotation: int  # degrees counter-clockwise the player turns the picture (ffprobe's convention): 0, 90, 180, 270
    creation_time: datetime | None
    size_bytes: int


def check_readable(path: str | Path) -> int:
    """Raise the typed error for a path that cannot be read as a file; return its size in bytes."""
    path = str(path)
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        raise FileMissingError(path, "file not found") from None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise UnreadableFileError(path, "symbolic link loop", "fix or remove the link") from None
        raise UnreadableFileError(path, f"cannot stat: {error.strerror}") from None
    if not S_ISREG(stat.st_mode):  # from the stat already taken (os.path.isfile would stat again)
        raise NotMediaError(path, "not a regular file")
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except PermissionError:
        raise UnreadableFileError(path, "permission denied") from None
    except OSError as error:
        raise UnreadableFileError(path, f"cannot read: {error.strerror}") from None
    if stat.st_size == 0:
        raise EmptyFileError(path, "zero-byte file")
    return stat.st_size


def probe(path: str | Path, timeout_s: float = 30.0) -> MediaInfo:
    """Describe `path`, or raise a `MediaError` subclass saying why it is not usable media."""
    path = str(path)
    size = check_readable(path)
    if shutil.which("ffprobe") is None:
        log.warning("ffprobe not found; probing %s with PyAV/PIL", path)
        return _probe_fallback(path, size, "ffprobe is not installed")
    try:
        report = _run_ffprobe(path, timeout_s)
    except MediaError as error:
        # ffprobe can refuse files PIL still reads (some TIFF/HEIF variants); give the fallback one chance.
        try:
            return _probe_fallback(path, size, error.reason)
        except MediaError:
            raise error from None
    return _info_from_ffprobe(path, size, report)


def _run_ffprobe(path: str, timeout_s: float) -> dict:
    cmd = ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", "--", path]
    try:
        result = subprocess.run(cmd, capture_output=True, timeout=timeout_s, check=False, start_new_session=True)
    except subprocess.TimeoutExpired:
        raise CorruptMediaError(path, f"ffprobe did not finish within {timeout_s:.0f} s") from None
    message = result.stderr.decode(errors="replace").strip().splitlines()
    if result.returncode != 0:
        reason = message[-1] if message else f"ffprobe exit code {result.returncode}"
        if any("moov atom not found" in line for line in message) and _looks_like_mp4(path):
            raise CorruptMediaError(path, "truncated: the MP4 index (moov atom) is missing, so nothing can be played")
        if "Invalid data found" in reason or "could not find codec parameters" in reason.lower():
            raise NotMediaError(path, f"not a recognised media file ({_strip_path(reason, path)})")
        raise CorruptMediaError(path, _strip_path(reason, path))
    return json.loads(result.stdout or b"{}")


def _looks_like_mp4(path: str) -> bool:
    """An ISO media file starts with an `ftyp` box: then a missing moov means truncation, not a non-media file."""
    with open(path, "rb") as handle:
        return handle.read(8)[4:8] == b"ftyp"


def _strip_path(message: str, path: str) -> str:
    return message.replace(f"{path}: ", "").strip()


def _info_from_ffprobe(path: str, size: int, report: dict) -> MediaInfo:
    streams = report.get("streams", [])
    video_streams = [s for s in streams if s.get("codec_type") == "video" and not _is_cover_art(s)]
    if not video_streams:
        kinds = sorted({s.get("codec_type", "?") for s in streams})
        found = f"only {', '.join(kinds)} streams" if kinds else "no streams"
        raise NotMediaError(path, f"no video or image stream ({found})")
    stream = video_streams[0]
    fmt = report.get("format", {})
    format_names = set(fmt.get("format_name", "").split(","))
    frame_count = _int(stream.get("nb_frames"))
    is_image = bool(format_names & _IMAGE_FORMATS) and not (
        format_names & _IMAGE_FORMATS_MULTI_FRAME and frame_count > 1
    )
    rotation = _rotation(stream)
    width, height = _int(stream.get("width")), _int(stream.get("height"))
    if width <= 0 or height <= 0:
        raise CorruptMediaError(path, "the video stream has no frame size")
    if rotation in (90, 270):
        width, height = height, width
    codec = stream.get("codec_name", "unknown")
    creation = _creation_time(fmt.get("tags", {})) or _creation_time(stream.get("tags", {}))
    if is_image:
        return MediaInfo(path, MediaKind.IMAGE, width, height, codec, 0.0, 0.0, 1, rotation, creation, size)
    fps = _rate(stream.get("avg_frame_rate")) or _rate(stream.get("r_frame_rate"))
    duration = _float(stream.get("duration")) or _float(fmt.get("duration"))
    if frame_count <= 0 and duration > 0 and fps > 0:
        frame_count = max(1, round(duration * fps))
    if duration <= 0 and frame_count > 0 and fps > 0:
        duration = frame_count / fps
    if duration <= 0 and frame_count <= 1:
        # A lone frame in a video container (e.g. a one-frame mp4): index it like an image would be.
        frame_count = 1
    return MediaInfo(path, MediaKind.VIDEO, width, height, codec, duration, fps, frame_count, rotation, creation, size)


def _probe_fallback(path: str, size: int, why: str) -> MediaInfo:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if getattr(image, "n_frames", 1) == 1:
                upright = ImageOps.exif_transpose(image)
                width, height = upright.size
                codec = (image.format or "image").lower()
                return MediaInfo(path, MediaKind.IMAGE, width, height, codec, 0.0, 0.0, 1, 0, None, size)
    except (UnidentifiedImageError, OSError):
        pass
    try:
        import av
    except ImportError:
        raise NotMediaError(path, f"not a recognised media file ({why})") from None
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise NotMediaError(path, "no video stream")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or 0)
            duration = float(stream.duration * stream.time_base) if stream.duration else 0.0
            if not duration and container.duration:
                duration = container.duration / 1_000_000
            frame_count = stream.frames or max(1, round(duration * fps))
            return MediaInfo(
                path,
                MediaKind.VIDEO,
                stream.width,
                stream.height,
                stream.codec_context.name,
                duration,
                fps,
                frame_count,
                0,
                None,
                size,
            )
    except av.error.FFmpegError as error:
        raise NotMediaError(path, f"not a recognised media file ({why}; PyAV: {error})") from None


def _is_cover_art(stream: dict) -> bool:
    return bool(stream.get("disposition", {}).get("attached_pic"))


def _rotation(stream: dict) -> int:
    degrees = 0.0
    for side_data in stream.get("side_data_list", []):
        if "rotation" in side_data:
            degrees = float(side_data["rotation"])  # counter-clockwise, from the display matrix
    if not degrees and "rotate" in stream.get("tags", {}):
        degrees = -float(stream["tags"]["rotate"])  # the legacy tag counts clockwise
    return round(degrees) % 360


def _creation_time(tags: dict) -> datetime | None:
    value = tags.get("creation_time")
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _rate(value: str | None) -> float:
    if not value or value in ("0/0", "N/A"):
        return 0.0
    numerator, _, denominator = value.partition("/")
    try:
        return float(numerator) / float(denominator or 1)
    except (ValueError, ZeroDivisionError):
        return 0.0


def _float(value: str | float | None) -> float:
    try:
        return float(value) if value not in (None, "N/A") else 0.0
    except (TypeError, ValueError):
        return 0.0


def _int(value: str | int | None) -> int:
    try:
        return int(value) if value not in (None, "N/A") else 0
    except (TypeError, ValueError):
        return 0
