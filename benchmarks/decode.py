"""Decode speed: decord vs the ffmpeg fallback vs PyAV sequential decoding, on 720p H.264, HEVC and VP9.

Samples 8 and 16 frames (official middle-of-segment sampling) from 10-second 720p clips and prints frames/s,
clips/s and each decoder's time as a ratio to decord's in the same run; then the cost of going through the
DecodePool (worker processes) against decoding in-process.

    .venv/bin/python benchmarks/decode.py [--repeats 3] [--out bench-out/decode]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from indexer.media.decode import decode
from indexer.media.probe import probe
from indexer.media.request import DecodeRequest
from indexer.media.sampling import select_frames
from indexer.media.workers import DecodePool

CODECS = {
    "h264": ("clip-h264.mp4", ["-c:v", "libx264", "-preset", "fast"]),
    "hevc": ("clip-hevc.mp4", ["-c:v", "libx265", "-preset", "fast", "-x265-params", "log-level=error"]),
    "vp9": ("clip-vp9.webm", ["-c:v", "libvpx-vp9", "-deadline", "good", "-cpu-used", "5", "-b:v", "2M"]),
}


def make_clips(out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for codec, (name, args) in CODECS.items():
        path = out / name
        if not path.exists():
            source = ["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30:duration=10"]
            subprocess.run(
                ["ffmpeg", "-v", "error", "-y", *source, *args, "-pix_fmt", "yuv420p", str(path)], check=True
            )
        paths[codec] = path
    return paths


def pyav_sequential(path: Path, num_frames: int) -> np.ndarray:
    """Decode every frame in order with PyAV and keep the sampled ones (the classic simple loader)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        times = [float(frame.pts * stream.time_base) for frame in container.decode(stream)]
    wanted = set(select_frames(np.asarray(times), 0.0, None, num_frames).tolist())
    kept = []
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(container.streams.video[0])):
            if index in wanted:
                kept.append(frame.to_ndarray(format="rgb24"))
    return np.stack(kept)


def decoders_for(path: Path, num_frames: int, info) -> dict[str, Callable[[], object]]:
    def with_backend(backend: str) -> Callable[[], object]:
        return lambda: decode(DecodeRequest(str(path), num_frames=num_frames, backend=backend, info=info))

    return {
        "decord": with_backend("decord"),
        "ffmpeg": with_backend("ffmpeg"),
        "pyav": lambda: pyav_sequential(path, num_frames),
    }


def timed(function: Callable[[], object], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench-out/decode"))
    args = parser.parse_args()
    clips = make_clips(args.out)
    print(f"{'codec':6} {'frames':>6} {'decoder':8} {'median s':>9} {'frames/s':>9} {'clips/s':>8} {'vs decord':>9}")
    for codec, path in clips.items():
        info = probe(path)
        for num_frames in (8, 16):
            decoders = decoders_for(path, num_frames, info)
            baseline = None
            for name, function in decoders.items():
                seconds = timed(function, args.repeats)
                baseline = baseline or seconds
                print(
                    f"{codec:6} {num_frames:6d} {name:8} {seconds:9.3f} {num_frames / seconds:9.1f} "
                    f"{1 / seconds:8.2f} {seconds / baseline:8.2f}x"
                )
    requests = [DecodeRequest(str(clips["h264"]), num_frames=8, size=224) for _ in range(8)]
    in_process = timed(lambda: [decode(r) for r in requests], 1)
    with DecodePool(workers=1) as pool:
        list(pool.imap(requests[:1]))  # warm the worker
        pooled = timed(lambda: list(pool.imap(requests)), 1)
    with DecodePool(workers=2) as pool:
        list(pool.imap(requests[:2]))
        pooled_two = timed(lambda: list(pool.imap(requests)), 1)
    print(
        f"\n8 clips (h264, 8 frames, resized to 224): in-process {in_process:.2f} s; DecodePool 1 worker "
        f"{pooled:.2f} s ({pooled / in_process:.2f}x); 2 workers {pooled_two:.2f} s ({pooled_two / in_process:.2f}x)"
    )


if __name__ == "__main__":
    main()
