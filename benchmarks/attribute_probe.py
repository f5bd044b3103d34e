"""What a model can tell apart, measured inside each encoder on a synthetic set's direction twins: where retrieval
fails, this says which tower is blind to what.

    python benchmarks/attribute_probe.py MODEL [MODEL ...] --data runs/bundled-model/validation [--pairs 60]

For each model (the first one is the baseline the others are set against):
- text: mean cosine of a caption and the same caption with one phrase of one attribute changed (colour, shape,
  motion, size); 1.0 means the text encoder cannot tell them apart;
- video: mean cosine of a direction video and its time-reversed twin (1.0: blind to time order), and the share of
  twin pairs matched right (the two captions with their own videos score more than crossed over; chance 0.5);
- the temporal adapters (lmhra): mean |weight| of their time convolutions, and mean |w(t-1) − w(t+1)|, the part that
  can tell forwards from backwards (both start near 0.02).

The twin set (`test_twins.jsonl`) comes with every set `make-synthetic` writes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from indexer.media.decode import decode
from indexer.media.request import model_request
from indexer.synthetic.attributes import COLOUR_WORDS, MOTION_PHRASES, SHAPE_WORDS, SIZE_WORDS
from mplug2 import load_model_bundle
from mplug2.train.caption_negatives import AttributeSwapper

GROUPS = {"colour": COLOUR_WORDS, "shape": SHAPE_WORDS, "motion": MOTION_PHRASES, "size": SIZE_WORDS}


def twin_pairs(data: Path, limit: int) -> list[tuple[dict, dict]]:
    rows = [json.loads(line) for line in (data / "annotations" / "test_twins.jsonl").read_text().splitlines()]
    half = len(rows) // 2  # the originals, then their twins in the same order
    return list(zip(rows[:half], rows[half:], strict=True))[:limit]


def text_cosines(bundle, captions: list[str]) -> dict[str, float]:
    rng = np.random.default_rng(0)
    figures = {}
    for group, words in GROUPS.items():
        swapper = AttributeSwapper({group: words})
        pairs = [(c, n) for c in captions if (n := swapper.negative(c, rng)) is not None]
        if not pairs:
            continue
        first = bundle.encode_texts([c for c, _ in pairs], kind="video").feat
        second = bundle.encode_texts([n for _, n in pairs], kind="video").feat
        figures[group] = float((first * second).sum(-1).mean())
    return figures


def video_features(bundle, data: Path, rows: list[dict]) -> torch.Tensor:
    features = []
    for row in rows:
        outcome = decode(model_request(bundle.config, str(data / row["video"]), "video"))
        features.append(bundle.encode_videos(outcome.spans[0].frames[None]).feat[0])
    return torch.stack(features)


def temporal_weights(model: torch.nn.Module) -> tuple[float, float]:
    convs = [m.weight for name, m in model.named_modules() if name.endswith(".conv") and ".lmhra" in name]
    if not convs:
        return float("nan"), float("nan")
    magnitude = float(torch.cat([w.abs().flatten() for w in convs]).mean())
    asymmetry = float(torch.cat([(w[:, :, 0] - w[:, :, 2]).abs().flatten() for w in convs]).mean())
    return magnitude, asymmetry


def probe(model: str, data: Path, pairs: list[tuple[dict, dict]]) -> dict:
    bundle = load_model_bundle(model)
    with torch.no_grad():
        originals = video_features(bundle, data, [a for a, _ in pairs])
        twins = video_features(bundle, data, [b for _, b in pairs])
        own = bundle.encode_texts([a["caption"] for a, _ in pairs], kind="video").feat
        opposite = bundle.encode_texts([b["caption"] for _, b in pairs], kind="video").feat
        matched = (own * originals).sum(-1) + (opposite * twins).sum(-1)
        crossed = (own * twins).sum(-1) + (opposite * originals).sum(-1)
        right = matched > crossed
        captions = [a["caption"] for a, _ in pairs]
        magnitude, asymmetry = temporal_weights(bundle.model)
        return {
            "text_cosine": text_cosines(bundle, captions),
            "video_vs_reversed_cosine": float((originals * twins).sum(-1).mean()),
            "twins_ranked_right": float(right.float().mean()),
            "lmhra_conv_mean_abs": magnitude,
            "lmhra_conv_asymmetry": asymmetry,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+")
    parser.add_argument("--data", type=Path, required=True, help="a make-synthetic folder (its direction twins)")
    parser.add_argument("--pairs", type=int, default=60)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    pairs = twin_pairs(args.data, args.pairs)
    results = {model: probe(model, args.data, pairs) for model in args.models}
    baseline = results[args.models[0]]
    print(f"{len(pairs)} twin pairs from {args.data}; baseline: {args.models[0]}")
    for model, figures in results.items():
        print(f"\n{model}")
        for group, cosine in figures["text_cosine"].items():
            reference = baseline["text_cosine"][group]
            print(f"  text cosine, one {group:6} changed   {cosine:.4f}  (baseline {reference:.4f})")
        for key in ("video_vs_reversed_cosine", "twins_ranked_right", "lmhra_conv_mean_abs", "lmhra_conv_asymmetry"):
            print(f"  {key:34} {figures[key]:.4f}  (baseline {baseline[key]:.4f})")


if __name__ == "__main__":
    main()
