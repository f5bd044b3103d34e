"""Model throughput: clips/s (video encoder + universal layers), texts/s and ITM pairs/s.

For each config (tiny and base on the CPU; large in bf16 when a GPU is present) it also times, in the same run, the
plain CLIP ViT of the same size on the same frames (open_clip, no temporal adapters, no universal layers) and prints
the ratio, so the cost of mPLUG-2's additions is visible; FLOPs come from torch's FlopCounterMode, giving achieved
GFLOP/s (and on a GPU, TFLOP/s against the card's bf16 peak).

    .venv/bin/python benchmarks/model.py [--configs mplug2-tiny mplug2-base] [--iters 3]

`--runtimes` instead compares torch fp32, OpenVINO fp32 and OpenVINO int8 for each config, side by side
(benchmarks/model_runtimes.py):

    .venv/bin/python benchmarks/model.py --runtimes --configs mplug2-base [--iters 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import open_clip
import torch
from open_clip.model import CLIPVisionCfg
from torch.utils.flop_counter import FlopCounterMode

from mplug2 import create_model

GPU_BF16_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense bf16, from the vendors' datasheets


def flops_of(function: Callable[[], object]) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        function()
    return counter.get_total_flops()


def seconds_per_call(function: Callable[[], object], iters: int, device: torch.device) -> float:
    function()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iters):
        function()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / iters


def bench(name: str, device: torch.device, iters: int, batch: int, dtype: torch.dtype | None) -> None:
    model = create_model(name, device=device)
    config = model.config
    frames, size = config.preprocess.num_frames, config.image_size
    video = torch.randn(batch, frames, 3, size, size, device=device)
    ids = torch.randint(
        5, 1000 % config.text.vocab_size + 5, (batch, config.preprocess.text_max_length_video), device=device
    )
    mask = torch.ones_like(ids)
    vision = config.vision
    plain = (
        open_clip.model._build_vision_tower(
            embed_dim=config.embed_dim,
            vision_cfg=CLIPVisionCfg(
                layers=vision.layers,
                width=vision.width,
                head_width=vision.width // vision.heads,
                patch_size=vision.patch_size,
                image_size=size,
            ),
            quick_gelu=True,
        )
        .to(device)
        .eval()
    )
    autocast = torch.autocast(device.type, dtype=dtype) if dtype else torch.autocast(device.type, enabled=False)
    with torch.no_grad(), autocast:  # not inference_mode: these feed the FLOP count below too
        text = model.encode_text(ids, mask)
        visual = model.encode_video(video)
    jobs = {
        "clips": (lambda: model.encode_video(video), batch),
        "plain CLIP ViT, same frames": (lambda: plain(video.flatten(0, 1)), batch),
        "texts": (lambda: model.encode_text(ids, mask), batch),
        "ITM pairs": (lambda: model.itm_logits(text.tokens, text.mask, visual.tokens), batch),
    }
    with torch.inference_mode(), autocast:
        rates = {job: items / seconds_per_call(function, iters, device) for job, (function, items) in jobs.items()}
    # FLOPs counted in a pass of its own, with autograd on: FlopCounterMode's module tracker needs it.
    with autocast:
        flops = {job: flops_of(function) / items for job, (function, items) in jobs.items()}
    results = {job: (rates[job], rates[job] * flops[job] / 1e9) for job in jobs}
    clip_rate, _ = results["clips"]
    plain_rate, _ = results["plain CLIP ViT, same frames"]
    print(f"\n{name} on {device.type} ({dtype or torch.float32}), {frames} frames at {size}px, batch {batch}:")
    for job, (rate, gflops) in results.items():
        line = f"  {job:30} {rate:10.3f} /s   {gflops:9.1f} GFLOP/s"
        if device.type == "cuda":
            peak = next((v for k, v in GPU_BF16_PEAK_TFLOPS.items() if k in torch.cuda.get_device_name()), None)
            if peak:
                line += f"   {gflops / 1e3 / peak:6.1%} of bf16 peak"
        print(line)
    print(f"  mPLUG-2 video encoder + universal layers take {plain_rate / clip_rate:.2f}x the plain ViT's time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["mplug2-tiny", "mplug2-base"])
    parser.add_argument("--iters", type=int, default=2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--runtimes", action="store_true", help="torch fp32 vs OpenVINO fp32 vs int8, per path")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.runtimes:
        sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: its sibling module
        from model_runtimes import compare_runtimes

        for name in args.configs:
            compare_runtimes(name, repeats=max(args.iters, 3))
        return
    for name in args.configs:
        bench(
            name,
            torch.device("cpu"),
            args.iters if name != "mplug2-tiny" else 20,
            batch=1 if name != "mplug2-tiny" else 8,
            dtype=None,
        )
    if torch.cuda.is_available():
        bench("mplug2-large", torch.device("cuda"), 10, batch=8, dtype=torch.bfloat16)
    else:
        print("\nno GPU here: the large-model bf16 run is skipped")


if __name__ == "__main__":
    main()
