"""A corpus of real media files, good and bad, encoded with ffmpeg: for the tests, the demo and the benchmarks.

Every good video paints a recognisable pattern so a test can check that the right frames came back the right way up:
a red band on the left, a green band on top, and a blue level that grows with the frame number (`frame_blue(i)`).
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer.media.encode import encode_frames, ffmpeg_binary, has_encoder

log = logging.getLogger(__name__)


def frame_blue(index: int) -> int:
    """The blue level painted into frame `index` (wraps every 32 frames)."""
    return 16 + (index % 32) * 7


def pattern_frames(count: int, width: int, height: int) -> Iterator[np.ndarray]:
    """Frames [H, W, 3]: red band on the left quarter, green band on the top quarter, blue level from the index."""
    for index in range(count):
        frame = np.zeros((height, width, 3), np.uint8)
        frame[..., 2] = frame_blue(index)
        frame[:, : width // 4, 0] = 230
        frame[: height // 4, :, 1] = 230
        yield frame


@dataclass(frozen=True)
class CorpusFile:
    """One file of the corpus and what the media layer must make of it."""

    path: Path
    expect: str  # "video", "image", or the error code the media layer must raise (see indexer.media.errors)
    note: str = ""


def _ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def _encode(path: Path, codec: str, seconds: float = 2.0, fps: int = 10, size=(96, 64), extra=()) -> Path:
    width, height = size
    return encode_frames(pattern_frames(int(seconds * fps), width, height), path, fps, codec=codec, extra_args=extra)


def good_videos(out: Path) -> list[CorpusFile]:
    """Videos every decoder path must read: several codecs, rotation, variable frame rate, one frame."""
    out.mkdir(parents=True, exist_ok=True)
    files = [
        CorpusFile(_encode(out / "h264.mp4", "libx264"), "video"),
        CorpusFile(_encode(out / "hevc.mp4", "libx265", extra=("-x265-params", "log-level=error")), "video"),
        CorpusFile(_encode(out / "vp9.webm", "libvpx-vp9"), "video"),
        CorpusFile(
            _encode(out / "vp9-realtime.webm", "libvpx-vp9", extra=("-deadline", "realtime", "-cpu-used", "8")),
            "video",
            "libvpx realtime mode: decord fails on it, the ffmpeg fallback must not",
        ),
        CorpusFile(
            encode_frames(pattern_frames(20, 96, 64), out / "mjpeg.avi", 10, codec="mjpeg", pix_fmt="yuvj420p"),
            "video",
        ),
        CorpusFile(_encode(out / "one-frame.mp4", "libx264", seconds=0.1), "video", "a single frame"),
        CorpusFile(_encode(out / "vidéo ☃ 東京.mp4", "libx264"), "video", "unicode file name"),
    ]
    for name in ("libsvtav1", "libaom-av1"):
        if has_encoder(name):
            extra = ("-preset", "12") if name == "libsvtav1" else ("-cpu-used", "8")
            files.append(CorpusFile(_encode(out / "av1.mkv", name, extra=extra), "video", "decord 0.6 cannot open AV1"))
            break
    plain = _encode(out / ".rotation-source.mp4", "libx264", size=(96, 48))
    rotated = out / "rotated-90.mp4"
    _ffmpeg("-i", str(plain), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(rotated))
    plain.unlink()
    files.append(CorpusFile(rotated, "video", "stored 96x48 with a 90-degree display rotation: decodes as 48x96"))
    files.append(CorpusFile(_variable_rate(out / "vfr.mp4"), "video", "10 frames in the first second, 4 in the next 2"))
    return files


def _variable_rate(path: Path) -> Path:
    """14 frames: 0.1 s apart for the first 10, then 0.5 s apart (variable frame rate, timestamps kept)."""
    frames = list(pattern_frames(14, 96, 64))
    source = path.with_suffix(".source.mkv")
    encode_frames(frames, source, 10, codec="libx264", extra_args=("-g", "1"))
    _ffmpeg(
        "-i",
        str(source),
        "-vf",
        "setpts='if(lt(N,10),N*0.1,1.0+(N-10)*0.5)/TB'",
        "-fps_mode",
        "passthrough",
        "-c:v",
        "libx264",
        "-g",
        "1",
        str(path),
    )
    source.unlink()
    return path


def bad_files(out: Path) -> list[CorpusFile]:
    """Files the media layer must reject with a typed error, or read despite their damage."""
    out.mkdir(parents=True, exist_ok=True)
    files: list[CorpusFile] = []

    zero = out / "zero-bytes.mp4"
    zero.write_bytes(b"")
    files.append(CorpusFile(zero, "empty"))

    text = out / "notes.mp4"
    text.write_text("This is a text file with a video extension.\n" * 20)
    files.append(CorpusFile(text, "not_media"))

    audio = out / "audio-only.mp4"
    _ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac", str(audio))
    files.append(CorpusFile(audio, "not_media", "an audio stream and no video"))

    jpeg = out / "photo-named-as-video.mp4"
    from PIL import Image

    Image.fromarray(next(pattern_frames(1, 120, 80))).save(jpeg, format="JPEG")
    files.append(CorpusFile(jpeg, "image", "a JPEG with an .mp4 name: decided by content"))

    # moov at the end (the default): cutting the file in half loses the index, nothing can be played.
    no_moov = _encode(out / "truncated-before-moov.mp4", "libx264", seconds=3)
    _truncate(no_moov, 0.5)
    files.append(CorpusFile(no_moov, "corrupt"))

    # moov first (faststart): cutting the tail loses frames, the first part still plays.
    faststart = _encode(
        out / "truncated-after-moov.mp4", "libx264", seconds=6, extra=("-movflags", "+faststart", "-g", "10")
    )
    _truncate_media_data(faststart, keep_fraction=0.5)
    files.append(CorpusFile(faststart, "video", "index intact, tail missing: the early clips decode"))

    damaged = _encode(out / "garbage-in-middle.mp4", "libx264", seconds=12, extra=("-g", "10", "-bf", "0"))
    _overwrite_middle(damaged, fraction=0.1)
    files.append(CorpusFile(damaged, "video", "12 s, keyframe every second, garbage over the middle 10% of bytes"))

    huge = out / "8k.mp4"
    _ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=7680x4320:rate=5:duration=0.6",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        str(huge),
    )
    files.append(CorpusFile(huge, "video", "7680x4320: decoded downscaled with bounded memory"))

    unreadable = _encode(out / "unreadable.mp4", "libx264")
    os.chmod(unreadable, 0)
    files.append(CorpusFile(unreadable, "unreadable", "mode 000 (root can still read it; see the tests)"))

    loop_a, loop_b = out / "loop-a.mp4", out / "loop-b.mp4"
    for link, target in ((loop_a, loop_b), (loop_b, loop_a)):
        if link.is_symlink():
            link.unlink()
        link.symlink_to(target.name)
    files.append(CorpusFile(loop_a, "unreadable", "a symbolic link loop"))
    return files


def _truncate(path: Path, keep_fraction: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep_fraction)])


def _truncate_media_data(path: Path, keep_fraction: float) -> None:
    """Cut an MP4 inside its `mdat` box (the frame data), keeping every box before it (the moov index, faststart)."""
    data = path.read_bytes()
    offset = 0
    while offset + 8 <= len(data):
        size = int.from_bytes(data[offset : offset + 4], "big")
        if data[offset + 4 : offset + 8] == b"mdat":
            path.write_bytes(data[: offset + 8 + int((size - 8) * keep_fraction)])
            return
        offset += size
    raise ValueError(f"{path} has no mdat box")


def _overwrite_middle(path: Path, fraction: float, seed: int = 7) -> None:
    data = bytearray(path.read_bytes())
    length = int(len(data) * fraction)
    start = (len(data) - length) // 2
    data[start : start + length] = np.random.default_rng(seed).integers(0, 256, length, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


def build_corpus(out: str | Path) -> list[CorpusFile]:
    """Write the whole corpus (good videos, an image, bad files) under `out`; a few seconds on 2 cores."""
    out = Path(out)
    files = good_videos(out / "good") + bad_files(out / "bad")
    image = out / "good" / "pattern.png"
    from PIL import Image

    Image.fromarray(next(pattern_frames(1, 90, 60))).save(image)
    files.append(CorpusFile(image, "image"))
    return files
