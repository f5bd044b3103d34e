"""Writing frames to a real video file with the ffmpeg command line (for test corpora and synthetic data)."""

from __future__ import annotations

import itertools
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from indexer.atomic import atomic_write


class EncoderUnavailableError(RuntimeError):
    """ffmpeg, or the requested encoder inside it, is not installed or refused the job."""


def ffmpeg_binary() -> str:
    path = shutil.which("ffmpeg")
    if path is None:
        raise EncoderUnavailableError("ffmpeg is not installed: run `scripts/setup.sh` or `apt-get install ffmpeg`")
    return path


def has_encoder(name: str) -> bool:
    """Whether this ffmpeg build can encode with `name` (e.g. libx264, libsvtav1)."""
    result = subprocess.run([ffmpeg_binary(), "-hide_banner", "-encoders"], capture_output=True, text=True, check=True)
    return any(line.split()[1:2] == [name] for line in result.stdout.splitlines() if line.startswith(" "))


def encode_frames(
    frames: Iterable[np.ndarray],
    path: str | Path,
    fps: float,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    extra_args: Sequence[str] = (),
    timeout_s: float = 300.0,
) -> Path:
    """Encode RGB uint8 frames `[H, W, 3]` (all the same size) into `path`.

    The container follows the file name (mp4, mkv, webm, avi, ...). `extra_args` go right before the output path,
    e.g. `("-crf", "28")` or `("-metadata:s:v", "rotate=90")`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iterator = iter(frames)
    first = next(iterator, None)
    if first is None:
        raise ValueError(f"no frames to encode into {path}")
    height, width = first.shape[:2]
    cmd = [
        ffmpeg_binary(),
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{width}x{height}",
        "-r",
        str(fps),
        "-i",
        "-",
        "-an",
        "-c:v",
        codec,
        "-pix_fmt",
        pix_fmt,
        *extra_args,
        str(path),
    ]
    # stderr goes to a file, not a pipe: a pipe nobody reads while we write frames could fill and deadlock.
    with tempfile.TemporaryFile() as stderr_file:
        process = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=stderr_file)
        assert process.stdin is not None
        try:
            for frame in itertools.chain([first], iterator):
                if frame.shape != first.shape or frame.dtype != np.uint8:
                    raise ValueError(f"frame of shape {frame.shape} {frame.dtype}; expected {first.shape} uint8")
                process.stdin.write(np.ascontiguousarray(frame).tobytes())
        except BrokenPipeError:
            pass  # ffmpeg exited early; its stderr below says why
        finally:
            process.stdin.close()
            process.wait(timeout=timeout_s)
        stderr_file.seek(0)
        message = stderr_file.read().decode(errors="replace").strip()
    if process.returncode != 0:
        raise EncoderUnavailableError(f"ffmpeg could not encode {path} with {codec}: {message}")
    return path


def cut_for_browser(source: str | Path, start: float, end: float, target: Path, timeout_s: float = 300.0) -> Path:
    """An H.264 MP4 of [start, end) of `source` that any browser plays, written whole or not at all."""

    def transcode(temporary: Path) -> None:
        command = [ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-y", "-ss", f"{start:.3f}"]
        command += ["-to", f"{end:.3f}", "-i", str(source), "-map", "0:v:0", "-c:v", "libx264"]
        command += ["-preset", "veryfast", "-pix_fmt", "yuv420p", "-movflags", "+faststart", "-f", "mp4"]
        try:
            subprocess.run([*command, str(temporary)], check=True, capture_output=True, timeout=timeout_s)
        except subprocess.CalledProcessError as error:
            message = error.stderr.decode(errors="replace").strip()[-300:] or f"exit code {error.returncode}"
            raise EncoderUnavailableError(f"ffmpeg failed: {message}") from None
        except subprocess.TimeoutExpired:
            raise EncoderUnavailableError(f"ffmpeg took longer than {timeout_s:.0f} s") from None

    return atomic_write(target, transcode)
