"""torch fp32 against OpenVINO fp32 and OpenVINO int8 for each inference path (video, image, text, ITM pairs),
side by side in one run: every repetition times each runtime in turn (interleaved, so load from other processes
falls on all three alike), medians reported with the speed-up over torch fp32 and the cosine to torch on held-out
clips: synthetic videos of another seed than the int8 calibration's, written to files by ffmpeg and decoded back
exactly as indexing decodes them (codec artefacts included). int8 is calibrated as indexing calibrates it (the
demo-style clips of indexer.synthetic.calibration). `benchmarks/model.py --runtimes`."""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from indexer.media.decode import decode
from indexer.media.request import model_request
from indexer.synthetic.calibration import calibration_clips
from indexer.synthetic.generate import generate
from mplug2.bundle import ModelBundle, load_model_bundle

VARIANTS = (("torch", "fp32"), ("openvino", "fp32"), ("openvino", "int8"))
CAPTIONS = ["a red circle moves left on a grey background", "two squares", "a small blue triangle grows"] * 3


def decoded_clips(config, count: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """uint8 clips [count, T, S, S, 3] decoded from synthetic test videos of `seed` (ffmpeg-encoded files), with
    their captions."""
    with tempfile.TemporaryDirectory(prefix="runtime-held-out-") as folder:
        generate(folder, seed=seed, train_videos=0, train_images=0, test_videos=count, test_images=0)
        annotations = (Path(folder) / "annotations" / "test_videos.jsonl").read_text().splitlines()
        rows = [json.loads(line) for line in annotations]
        requests = [model_request(config, str(Path(folder) / row["video"]), "video") for row in rows]
        clips = [decode(request).spans[0].frames for request in requests]
    return np.stack(clips), [row["caption"] for row in rows]


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.flatten(1).double(), b.flatten(1).double()).min())


def _jobs(bundle: ModelBundle, clips: np.ndarray, captions: list[str]) -> dict[str, tuple[Callable, int]]:
    """Each path's call on the timing inputs (one clip, one image, a batch of texts, a batch of ITM pairs)."""
    text = bundle.encode_texts(captions)
    visual = bundle.encode_videos(clips[:1]).tokens.expand(len(captions), -1, -1).contiguous()
    return {
        "video clips": (lambda: bundle.encode_videos(clips[:1]), 1),
        "images": (lambda: bundle.encode_images(clips[:1, 0]), 1),
        "texts": (lambda: bundle.encode_texts(captions), len(captions)),
        "ITM pairs": (lambda: bundle.itm_pair_logits(text, visual), len(captions)),
    }


def _outputs(bundle: ModelBundle, clips: np.ndarray, captions: list[str]) -> dict[str, torch.Tensor]:
    text = bundle.encode_texts(captions)
    video = bundle.encode_videos(clips)
    return {
        "video clips": video.feat,
        "images": bundle.encode_images(clips[:, 0]).feat,
        "texts": text.feat,
        "ITM pairs": bundle.itm_pair_logits(text, video.tokens),
    }


def compare_runtimes(name: str, repeats: int, cache_root: Path | None = None) -> dict:
    torch.manual_seed(0)
    base = load_model_bundle(name, device="cpu")
    frames = base.config.preprocess.num_frames
    held_clips, held_captions = decoded_clips(base.config, count=len(CAPTIONS), seed=1)
    cache_root = cache_root or Path(tempfile.mkdtemp(prefix="runtime-bench-"))
    bundles, export_s = {}, {}
    for runtime, precision in VARIANTS:
        bundle = dataclasses.replace(base, runner=None, runtime="torch", precision="fp32")
        started = time.perf_counter()
        if runtime != "torch":
            fallback = bundle.use_runtime(
                runtime,
                precision,
                cache_root=cache_root,
                calibration=lambda: calibration_clips(frames),
                prepare=("video", "image", "text", "itm"),
            )
            if fallback:
                print(f"  {runtime} {precision}: not measured ({fallback})")
                continue
        export_s[(runtime, precision)] = time.perf_counter() - started
        bundles[(runtime, precision)] = bundle
    reference = _outputs(bundles[VARIANTS[0]], held_clips, held_captions)
    cosines = {
        variant: {job: _cosine(out, reference[job]) for job, out in _outputs(b, held_clips, held_captions).items()}
        for variant, b in bundles.items()
    }
    jobs = {variant: _jobs(b, held_clips, CAPTIONS) for variant, b in bundles.items()}
    load_before = os.getloadavg()
    times: dict = {variant: {job: [] for job in jobs[variant]} for variant in bundles}
    for variant in bundles:  # warm-up
        for function, _ in jobs[variant].values():
            function()
    for _ in range(repeats):
        for job in jobs[VARIANTS[0]]:
            for variant in bundles:
                function, items = jobs[variant][job]
                started = time.perf_counter()
                function()
                times[variant][job].append((time.perf_counter() - started) / items)
    load_after = os.getloadavg()
    print(
        f"\n{name}: {frames} frames at {base.config.image_size}px; median of {repeats} interleaved runs; "
        f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after (2 cores shared)"
    )
    print(f"  {'path':12} {'runtime':16} {'s/item':>9} {'vs torch':>9} {'cosine to torch (min)':>22}")
    summary: dict = {"load": [load_before[0], load_after[0]], "rows": []}
    for job in jobs[VARIANTS[0]]:
        torch_s = statistics.median(times[VARIANTS[0]][job])
        for variant in bundles:
            seconds = statistics.median(times[variant][job])
            label = f"{variant[0]} {variant[1]}"
            cosine = "-" if variant == VARIANTS[0] else f"{cosines[variant][job]:.6f}"
            print(f"  {job:12} {label:16} {seconds:9.4f} {torch_s / seconds:8.2f}x {cosine:>22}")
            summary["rows"].append([job, label, seconds, torch_s / seconds, cosines[variant][job]])
    for variant, seconds in export_s.items():
        if variant != VARIANTS[0]:
            print(f"  {variant[0]} {variant[1]}: export/load of the four graphs {seconds:.0f} s (once per weights)")
    return summary
