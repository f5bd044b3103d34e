"""What a model can tell apart, measured inside each encoder on a synthetic set's direction twins: where retrieval
fails, this says which tower is blind to what.

    python benchmarks/attribute_probe.py MODEL [MODEL ...] --data runs/bundled-model/validation [--pairs 60]

For each model (the first one is the baseline the others are set against):
- text: mean cosine of a caption and the same caption with one phrase of one attribute changed (colour, shape,
  motion, size); 1.0 means the text encoder cannot tell them apart;
- video: mean cosine of a direction video and its time-reversed twin (1.0: blind to time order), and the share of
  twin pairs matched right (the two captions with their own videos score more than crossed over; chance 0.5);
- the temporal adapters (lmhra): mean |weight| of their time convolutions, and mean |w(t-1) − w(t+1)|, the part that
  can tell forwards from backwards (both start near 0.02);
- video features: how well a linear probe (softmax regression, 5-fold) reads each attribute from the test videos'
  ITC vectors and from the mean of their visual tokens (what the fusion encoder reads), against chance (the most
  common value's share). An attribute retrieval gets right while no probe reads it is one the gallery's other
  items rarely differ in, not one the model sees.

The twin set (`test_twins.jsonl`) comes with every set `make-synthetic` writes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

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


def video_outputs(bundle, data: Path, rows: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
    """(ITC vectors [N, D], mean visual tokens [N, H]) of the videos of `rows`."""
    feats, tokens = [], []
    for row in rows:
        outcome = decode(model_request(bundle.config, str(data / row["video"]), "video"))
        output = bundle.encode_videos(outcome.spans[0].frames[None])
        feats.append(output.feat[0])
        tokens.append(output.tokens[0].mean(0))
    return torch.stack(feats), torch.stack(tokens)


def probe_accuracy(features: torch.Tensor, values: list[str], folds: int = 5) -> float:
    """Held-out accuracy (`folds`-fold) of a softmax regression on standardised `features` predicting `values`."""
    names = sorted(set(values))
    labels = torch.tensor([names.index(value) for value in values])
    x = (features - features.mean(0)) / (features.std(0) + 1e-6)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    correct = 0
    for held_out in order.chunk(folds):
        train = order[~torch.isin(order, held_out)]
        weight, bias = fit_softmax(x[train], labels[train], len(names))
        correct += int(((x[held_out] @ weight + bias).argmax(1) == labels[held_out]).sum())
    return correct / len(labels)


def fit_softmax(
    x: torch.Tensor, labels: torch.Tensor, classes: int, l2: float = 0.01
) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight [D, classes], bias [classes]) of a softmax regression with an L2 penalty, by L-BFGS (the script runs
    with gradients off, hence enable_grad)."""
    with torch.enable_grad():
        weight = torch.zeros(x.shape[1], classes, requires_grad=True)
        bias = torch.zeros(classes, requires_grad=True)
        optimizer = torch.optim.LBFGS([weight, bias], max_iter=300)

        def loss() -> torch.Tensor:
            optimizer.zero_grad()
            value = F.cross_entropy(x @ weight + bias, labels) + l2 * weight.square().sum()
            value.backward()
            return value

        optimizer.step(loss)
    return weight.detach(), bias.detach()


def visual_probes(bundle, data: Path, limit: int) -> dict[str, dict[str, float]]:
    """{attribute: {"itc": accuracy, "tokens": accuracy, "chance": share}} over up to `limit` test videos."""
    lines = (data / "annotations" / "test_videos.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines][:limit]
    feats, tokens = video_outputs(bundle, data, rows)
    figures = {}
    for attribute in ("shape", "colour", "motion", "size"):
        labelled = [i for i, row in enumerate(rows) if attribute in row["attributes"]]
        values = [rows[i]["attributes"][attribute] for i in labelled]
        if len(values) < 10:  # too few to hold out a fifth and learn from the rest
            continue
        figures[attribute] = {
            "itc": probe_accuracy(feats[labelled], values),
            "tokens": probe_accuracy(tokens[labelled], values),
            "chance": max(values.count(value) for value in set(values)) / len(values),
        }
    return figures


def temporal_weights(model: torch.nn.Module) -> tuple[float, float]:
    convs = [m.weight for name, m in model.named_modules() if name.endswith(".conv") and ".lmhra" in name]
    if not convs:
        return float("nan"), float("nan")
    magnitude = float(torch.cat([w.abs().flatten() for w in convs]).mean())
    asymmetry = float(torch.cat([(w[:, :, 0] - w[:, :, 2]).abs().flatten() for w in convs]).mean())
    return magnitude, asymmetry


def probe(model: str, data: Path, pairs: list[tuple[dict, dict]], videos: int) -> dict:
    bundle = load_model_bundle(model)
    with torch.no_grad():
        originals, _ = video_outputs(bundle, data, [a for a, _ in pairs])
        twins, _ = video_outputs(bundle, data, [b for _, b in pairs])
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
            "visual_probe": visual_probes(bundle, data, videos),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+")
    parser.add_argument("--data", type=Path, required=True, help="a make-synthetic folder (its direction twins)")
    parser.add_argument("--pairs", type=int, default=60)
    parser.add_argument("--videos", type=int, default=500, help="test videos the linear probes learn and are tested on")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    pairs = twin_pairs(args.data, args.pairs)
    results = {model: probe(model, args.data, pairs, args.videos) for model in args.models}
    baseline = results[args.models[0]]
    print(f"{len(pairs)} twin pairs from {args.data}; baseline: {args.models[0]}")
    for model, figures in results.items():
        print(f"\n{model}")
        for group, cosine in figures["text_cosine"].items():
            reference = baseline["text_cosine"][group]
            print(f"  text cosine, one {group:6} changed   {cosine:.4f}  (baseline {reference:.4f})")
        for key in ("video_vs_reversed_cosine", "twins_ranked_right", "lmhra_conv_mean_abs", "lmhra_conv_asymmetry"):
            print(f"  {key:34} {figures[key]:.4f}  (baseline {baseline[key]:.4f})")
        for attribute, probes in figures["visual_probe"].items():
            reference = baseline["visual_probe"][attribute]
            print(
                f"  linear probe of {attribute:6} from ITC {probes['itc']:.3f} / tokens {probes['tokens']:.3f}  "
                f"(chance {probes['chance']:.3f}; baseline {reference['itc']:.3f} / {reference['tokens']:.3f})"
            )


if __name__ == "__main__":
    main()
