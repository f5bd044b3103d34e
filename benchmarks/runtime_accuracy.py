"""The bundled model's retrieval with int8 against torch fp32 on a fresh seed's test split, side by side: ITC
text-to-video and text-to-image R@1 over the seed's 400 test videos and 100 test images, each rendered exactly as
`make-synthetic --seed S` plans it (same scenes and captions) but straight to the model's frames, without the video
codec and decoder (a quick stand-in for `make heldout-eval`, which takes about 5 minutes per seed and runtime on an
idle machine). Re-ranking is left out: the bundled model's validation chose none.

    .venv/bin/python benchmarks/runtime_accuracy.py --seeds 11 13 [--precision int8] [--model FOLDER] [--record]

--record writes the verdict into the model folder's runtime.json: the precision is withheld when it moved any R@1 by
more than 0.01 (`make bundled-model` records it for the model it builds).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from indexer.synthetic.calibration import calibration_clips
from indexer.synthetic.captions import image_caption, video_caption
from indexer.synthetic.generate import CODECS, FRAME_RATES, RESOLUTIONS, _rng, plan
from indexer.synthetic.render import render_image, render_video
from mplug2.bundle import ModelBundle, load_model_bundle
from mplug2.runtime.offered import RUNTIME_FILE, record_drift

REPO = Path(__file__).resolve().parents[1]


def fresh_items(seed: int, config, videos: int = 400, images: int = 100):
    """(clips [N, T, S, S, 3], captions), (images [M, S, S, 3], captions) of the seed's test split, resized to the
    model's input as indexing resizes decoded frames (the config's interpolation per kind)."""
    from mplug2.resize import resize_frames

    size, num_frames = config.image_size, config.preprocess.num_frames
    video_interpolation, image_interpolation = (
        config.preprocess.video_interpolation,
        config.preprocess.image_interpolation,
    )

    layout = plan(seed, 0, 0, videos, images)
    clips, clip_captions = [], []
    for item in layout.videos:
        rng = _rng(seed, item.split, item.index)  # drawn in _write_video's order: same scene, same caption
        width, height = RESOLUTIONS[int(rng.integers(len(RESOLUTIONS)))]
        rng.integers(len(FRAME_RATES)), rng.uniform(1.5, 6.0), rng.integers(len(CODECS))
        frames = np.stack(list(render_video(list(item.shapes), item.background, width, height, num_frames, rng)))
        clips.append(resize_frames(frames, size, video_interpolation))
        clip_captions.append(video_caption(list(item.shapes), item.background, item.split, rng))
    pictures, picture_captions = [], []
    for item in layout.images:
        rng = _rng(seed, item.split, item.index, 5)
        width, height = RESOLUTIONS[int(rng.integers(len(RESOLUTIONS)))]
        picture = render_image(item.shape, item.background, width, height, rng)
        pictures.append(resize_frames(picture[None], size, image_interpolation)[0])
        picture_captions.append(image_caption(item.shape, item.background, item.split, rng))
    return (np.stack(clips), clip_captions), (np.stack(pictures), picture_captions)


def r_at_1(bundle: ModelBundle, media: np.ndarray, captions: list[str], kind: str) -> float:
    encode = bundle.encode_videos if kind == "video" else bundle.encode_images
    items = torch.cat([encode(media[i : i + 16]).feat for i in range(0, len(media), 16)])
    texts = torch.cat([bundle.encode_texts(captions[i : i + 64], kind).feat for i in range(0, len(captions), 64)])
    best = (texts @ items.T).argmax(dim=1)
    return float((best == torch.arange(len(captions))).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[11, 13])
    parser.add_argument("--model", type=Path, default=REPO / "data" / "models" / "mplug2-synth")
    parser.add_argument("--precision", default="int8")
    parser.add_argument("--record", action="store_true", help="write the verdict into the model folder's runtime.json")
    args = parser.parse_args()
    torch_bundle = load_model_bundle(args.model, with_fusion=False)
    fast = dataclasses.replace(torch_bundle, runner=None)
    frames = torch_bundle.config.preprocess.num_frames
    fallback = fast.use_runtime(
        "openvino",
        args.precision,
        cache_root=Path(tempfile.mkdtemp(prefix="runtime-accuracy-")),
        calibration=lambda: calibration_clips(frames),
        prepare=("video", "image", "text"),
    )
    if fallback:
        raise SystemExit(f"openvino {args.precision} is not available for this model: {fallback}")
    print(json.dumps(fast.runner.drift(), indent=1))
    rows = []
    for seed in args.seeds:
        (clips, clip_captions), (pictures, picture_captions) = fresh_items(seed, torch_bundle.config)
        row = {"seed": seed}
        for label, bundle in (("torch fp32", torch_bundle), (f"openvino {args.precision}", fast)):
            row[label] = {
                "t2v_R@1": r_at_1(bundle, clips, clip_captions, "video"),
                "t2i_R@1": r_at_1(bundle, pictures, picture_captions, "image"),
            }
        fp32, fast_row = row["torch fp32"], row[f"openvino {args.precision}"]
        row["difference"] = {key: fast_row[key] - fp32[key] for key in fp32}
        print(json.dumps(row))
        rows.append({"seed": seed, "reference": fp32, "candidate": fast_row})
    if args.record:
        offered = record_drift(args.model, args.precision, f"OpenVINO {args.precision} (NNCF)", rows)
        print(f"{args.model / RUNTIME_FILE}: {args.precision} {'offered' if offered else 'withheld'}")


if __name__ == "__main__":
    main()
