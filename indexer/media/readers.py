"""The video frame readers behind `indexer.media.decode`: decord, the ffmpeg command line and torchcodec. Each opens
one file, knows every frame's time (`timestamps`) and reads the frames at given indices, upright and no larger than
the request's `max_side`; a failure is a `MediaError` saying why.

They run inside the decode worker processes: torch is imported only by the torchcodec reader, on first use.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import threading

import numpy as np

from indexer.media.errors import CorruptMediaError, UnsupportedCodecError
from indexer.media.probe import MediaInfo
from indexer.media.request import DecodeRequest


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


Reader = _DecordReader | _FfmpegReader | _TorchcodecReader
READERS: dict[str, type] = {"decord": _DecordReader, "ffmpeg": _FfmpegReader, "torchcodec": _TorchcodecReader}


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__
