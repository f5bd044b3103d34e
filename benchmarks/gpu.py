"""The GPU path, measured in one run: model, decode, vector search and end-to-end indexing on one CUDA device.

1. Model: mplug2-large video encoding (16 frames at 224 px, video encoder + universal layers) in bf16 autocast:
   clips/s, and model FLOP utilisation (FLOPs from torch's FlopCounterMode against the card's dense bf16 peak).
2. Decode: NVDEC (torchcodec on CUDA) against decord and torchcodec on the CPU, on 720p H.264: full-decode frames/s
   and clips/s when sampling 16 frames a clip, each as a ratio to decord's in the same run.
3. Vector search: FAISS IndexFlatIP on the GPU against the CPU at 1M x 256 vectors: one query, and 100 queries at once.
4. End to end: `index_paths` over a synthetic archive with an mplug2-large model folder (random weights: speed does
   not depend on them) on the GPU, with `--decoder torchcodec` and with the default decoders; clips/s and stages.

Without a CUDA device each section says it is skipped and why, and the script exits 0. `--smoke` runs every section
on the CPU at toy sizes (mplug2-tiny, 10k vectors, a handful of files) so the code is exercised where no GPU is lent.

    .venv/bin/python benchmarks/gpu.py [--out bench-out/gpu] [--vectors 1000000] [--videos 64] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
# Dense bf16 peaks (no sparsity) from the vendors' datasheets, TFLOP/s.
GPU_BF16_PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0, "L4": 121.0}


def _cuda() -> tuple[bool, str]:
    import torch

    if not torch.cuda.is_available():
        return False, "no CUDA device visible to torch"
    return True, torch.cuda.get_device_name()


def _timed(function: Callable[[], object], repeats: int, sync: bool) -> float:
    """Median seconds of `repeats` calls after one warm-up."""
    import torch

    function()
    samples = []
    for _ in range(repeats):
        if sync:
            torch.cuda.synchronize()
        started = time.perf_counter()
        function()
        if sync:
            torch.cuda.synchronize()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def bench_model(config_name: str, device: str, batch: int, repeats: int) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from mplug2 import create_model

    model = create_model(config_name, device=device).eval()
    config = model.config
    video = torch.randn(batch, config.preprocess.num_frames, 3, config.image_size, config.image_size, device=device)
    dtype = torch.bfloat16 if device == "cuda" else None
    autocast = torch.autocast(device, dtype=dtype) if dtype else torch.autocast(device, enabled=False)
    with torch.inference_mode(), autocast:
        seconds = _timed(lambda: model.encode_video(video), repeats, sync=device == "cuda")
    # Counted on one clip (FLOPs are linear in the batch), in a pass of its own: the counter's module tracker needs
    # autograd on, which would keep a whole batch's activations.
    counter = FlopCounterMode(display=False)
    with autocast, counter:
        model.encode_video(video[:1])
    flops_per_clip = counter.get_total_flops()
    clips_per_s = batch / seconds
    result = {
        "config": config_name,
        "device": device,
        "dtype": str(dtype or torch.float32),
        "batch": batch,
        "frames": config.preprocess.num_frames,
        "clips_per_s": round(clips_per_s, 2),
        "gflop_per_clip": round(flops_per_clip / 1e9, 3),
        "achieved_tflops": round(clips_per_s * flops_per_clip / 1e12, 4),
    }
    if device == "cuda":
        name = torch.cuda.get_device_name()
        peak = next((v for k, v in GPU_BF16_PEAK_TFLOPS.items() if k in name), None)
        result["mfu"] = round(result["achieved_tflops"] / peak, 4) if peak else None
        result["peak_tflops"] = peak
    return result  # the model goes with this frame: its GPU memory is free for the next section


def _make_clip(out: Path, seconds: int, size: str) -> Path:
    path = out / f"clip-{size}-{seconds}s.mp4"
    if not path.exists():
        out.mkdir(parents=True, exist_ok=True)
        source = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30:duration={seconds}"]
        codec = ["-c:v", "libx264", "-preset", "fast", "-g", "30", "-pix_fmt", "yuv420p"]
        subprocess.run(["ffmpeg", "-v", "error", "-y", *source, *codec, str(path)], check=True)
    return path


def bench_decode(out: Path, size: str, seconds: int, repeats: int, gpu: bool) -> dict:
    """Full decode frames/s and sampled clips/s (16 frames a clip, the whole file one clip) per decoder."""
    import decord
    from torchcodec.decoders import VideoDecoder

    from indexer.media.sampling import select_frames

    path = str(_make_clip(out, seconds, size))

    def decord_full() -> int:
        reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
        return len(reader.get_batch(list(range(len(reader)))).asnumpy())

    def decord_sampled() -> int:
        reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
        times = reader.get_frame_timestamp(np.arange(len(reader)))[:, 0]
        return len(reader.get_batch(list(map(int, select_frames(times, 0.0, None, 16)))).asnumpy())

    def torchcodec_full(device: str) -> Callable[[], int]:
        def run() -> int:
            decoder = VideoDecoder(path, device=device, dimension_order="NHWC")
            frames = decoder.get_frames_in_range(0, decoder.metadata.num_frames).data
            return len(frames.cpu())

        return run

    def torchcodec_sampled(device: str) -> Callable[[], int]:
        def run() -> int:
            decoder = VideoDecoder(path, device=device, dimension_order="NHWC")
            count = decoder.metadata.num_frames
            indices = select_frames(np.arange(count) / decoder.metadata.average_fps, 0.0, None, 16)
            return len(decoder.get_frames_at(list(map(int, indices))).data.cpu())

        return run

    decoders: dict[str, tuple[Callable[[], int], Callable[[], int]]] = {
        "decord (CPU, 1 thread)": (decord_full, decord_sampled),
        "torchcodec (CPU, 1 thread)": (torchcodec_full("cpu"), torchcodec_sampled("cpu")),
    }
    if gpu:
        decoders["torchcodec NVDEC (CUDA)"] = (torchcodec_full("cuda"), torchcodec_sampled("cuda"))
    rows = {}
    for name, (full, sampled) in decoders.items():
        frames = full()
        full_s = _timed(full, repeats, sync=False)
        sampled_s = _timed(sampled, repeats, sync=False)
        rows[name] = {"full_decode_fps": round(frames / full_s, 1), "sampled_clips_per_s": round(1 / sampled_s, 2)}
    base = rows["decord (CPU, 1 thread)"]
    for row in rows.values():
        row["full_vs_decord"] = round(row["full_decode_fps"] / base["full_decode_fps"], 2)
        row["sampled_vs_decord"] = round(row["sampled_clips_per_s"] / base["sampled_clips_per_s"], 2)
    return {"file": f"{size} H.264, {seconds} s at 30 fps", "decoders": rows}


def bench_faiss(count: int, dim: int, repeats: int, gpu: bool) -> dict:
    import faiss

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((count, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[rng.choice(count, 100, replace=False)] + 0.05 * rng.standard_normal((100, dim), np.float32)
    faiss.cvar.distance_compute_blas_threshold = 20  # batched queries through BLAS (see MACHINE_NOTES.md)
    cpu = faiss.IndexFlatIP(dim)
    cpu.add(vectors)
    indexes: dict[str, object] = {"CPU IndexFlatIP": cpu}
    result: dict = {"vectors": count, "dim": dim, "k": 10}
    if gpu:
        if not hasattr(faiss, "StandardGpuResources"):
            result["gpu_skipped"] = "this faiss has no GPU support (install the `gpu` extra: faiss-gpu)"
        else:
            resources = faiss.StandardGpuResources()
            indexes["GPU IndexFlatIP"] = faiss.index_cpu_to_gpu(resources, 0, cpu)
    rows = {}
    for name, index in indexes.items():
        one = _timed(lambda index=index: index.search(queries[:1], 10), repeats * 5, sync=False)
        batch = _timed(lambda index=index: index.search(queries, 10), repeats, sync=False)
        rows[name] = {"one_query_ms": round(one * 1000, 3), "100_queries_ms": round(batch * 1000, 2)}
    if "GPU IndexFlatIP" in rows:
        _, exact = cpu.search(queries, 10)
        _, found = indexes["GPU IndexFlatIP"].search(queries, 10)
        overlap = [len(set(a) & set(b)) / 10 for a, b in zip(exact, found, strict=True)]
        result["gpu_agrees_at_10"] = float(np.mean(overlap))  # float32 sums in another order: ties may swap
        cpu_row, gpu_row = rows["CPU IndexFlatIP"], rows["GPU IndexFlatIP"]
        for key in ("one_query_ms", "100_queries_ms"):
            gpu_row[f"{key}_speedup"] = round(cpu_row[key] / gpu_row[key], 1)
    result["indexes"] = rows
    return result


def bench_index(out: Path, config_name: str, videos: int, device: str, decoders: list[str]) -> dict:
    import torch

    from indexer.indexing.pipeline import IndexOptions, index_paths
    from indexer.settings import Settings, sqlite_url
    from indexer.synthetic.generate import generate
    from indexer.synthetic.vocab import write_synthetic_vocab
    from mplug2 import create_model, save_model_folder
    from mplug2.bundle import load_model_bundle

    data = out / f"media-{videos}"
    if not (data / "manifest.json").exists():
        generate(data, seed=5, train_videos=0, train_images=0, test_videos=videos, test_images=0, long_videos=2)
    folder = out / f"model-{config_name}"
    if not (folder / "model").exists():
        torch.manual_seed(0)
        vocab = write_synthetic_vocab(out / f"vocab-{config_name}.txt")
        save_model_folder(create_model(config_name), vocab, folder / "model")
    bundle = load_model_bundle(folder / "model", device=device, with_fusion=False)
    rows = {}
    for decoder in decoders:
        state = out / f"archive-{decoder}"
        shutil.rmtree(state, ignore_errors=True)
        settings = Settings(state, sqlite_url(state / "catalog.sqlite"), state / "index", None)
        workers = 4 if device == "cuda" else 2
        options = IndexOptions(decoder=decoder, workers=workers, batch_size=32, progress=False)
        summary = index_paths([data], settings, bundle, options)
        total = summary.timings["total"]
        rows[decoder] = {
            "files": summary.indexed,
            "clips": summary.clips,
            "seconds": round(total, 1),
            "clips_per_s": round(summary.clips / total, 2),
            "stages_s": {k: round(v, 1) for k, v in summary.timings.items()},
            "decoders_used": dict(summary.decoders),
        }
    return {"model": config_name, "device": device, "runs": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "bench-out" / "gpu")
    parser.add_argument("--vectors", type=int, default=1_000_000)
    parser.add_argument("--videos", type=int, default=64, help="synthetic videos for the end-to-end run")
    parser.add_argument("--batch", type=int, default=32, help="clips per model call")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="every section on the CPU at toy sizes (no GPU needed)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["model", "decode", "faiss", "index"])
    args = parser.parse_args()

    gpu, device_name = _cuda()
    report: dict = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "device": device_name if gpu else f"CPU ({device_name})",
        "smoke": args.smoke,
    }
    if not gpu and not args.smoke:
        reason = f"skipped: {device_name}. Run this on a CUDA machine (or pass --smoke to exercise it on the CPU)."
        for section in ("model", "decode", "faiss", "index"):
            report[section] = {"skipped": reason}
            print(f"{section}: {reason}")
        _write(args.out, report)
        return
    device = "cuda" if gpu else "cpu"
    sections: dict[str, Callable[[], dict]] = {
        "model": lambda: bench_model(
            "mplug2-large" if gpu else "mplug2-tiny", device, args.batch if gpu else 2, args.repeats
        ),
        "decode": lambda: bench_decode(
            args.out / "clips", "1280x720" if gpu else "320x240", 10 if gpu else 2, args.repeats if gpu else 1, gpu
        ),
        "faiss": lambda: bench_faiss(args.vectors if gpu else 10_000, 256, args.repeats, gpu),
        "index": lambda: bench_index(
            args.out,
            "mplug2-large" if gpu else "mplug2-tiny",
            args.videos if gpu else 4,
            device,
            ["torchcodec", "auto"],
        ),
    }
    for name, run in sections.items():
        if name in args.skip:
            continue
        started = time.perf_counter()
        try:
            report[name] = run()
        except ImportError as error:  # an extra that is not installed: say which, measure the rest
            report[name] = {"skipped": f"{type(error).__name__}: {error}"}
        report[name]["section_seconds"] = round(time.perf_counter() - started, 1)
        print(f"{name}: {json.dumps(report[name], indent=1)}", flush=True)
        if gpu:
            import torch

            torch.cuda.empty_cache()
    _write(args.out, report)


def _write(out: Path, report: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "gpu.json"
    path.write_text(json.dumps(report, indent=1))
    print(f"written: {path}")


if __name__ == "__main__":
    main()
