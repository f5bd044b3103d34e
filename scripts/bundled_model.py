"""Rebuild the bundled default model, data/models/mplug2-synth, from nothing: `make bundled-model`.

1. generate the synthetic benchmark (fixed seed), 2. build the vocabulary, 3. train mplug2-synth with ITC + ITM on
the training split (fixed seeds, a time budget for 2 CPU cores), 4. measure it on the held-out test split, 5. write
the model folder with its metrics. Every step resumes: rerun the command after an interruption.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
TARGET = REPO / "data" / "models" / "mplug2-synth"


def run(*args: str) -> None:
    print("+ mplug2-search", " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "indexer", *args], check=True, cwd=REPO)


def write_model_card(folder: Path, headline: dict, args: argparse.Namespace) -> None:
    """README.md in the model folder: what it is, how it was made, what it scores."""
    figures = "\n".join(
        f"| {key} | {value:.3f} |" if isinstance(value, float) else f"| {key} | {value} |"
        for key, value in headline.items()
    )
    folder.joinpath("README.md").write_text(
        "# mplug2-synth\n\n"
        "The mPLUG-2 retrieval architecture at the `mplug2-small` size, trained from random weights on the project's "
        "synthetic shapes benchmark (seed 0: 4000 videos, 1000 images) with ITC + ITM on 2 CPU cores. It has "
        "learnt colours, backgrounds and sizes; shapes and motions it tells apart little better than chance (the "
        "figures below), and it knows nothing outside the benchmark.\n\n"
        f"Rebuild: `make bundled-model` (python scripts/bundled_model.py --install): joint ITC + ITM, "
        f"{args.epochs} epochs planned, lr {args.lr}, batch {args.batch_size}, {args.hard_batches:.0%} of batches "
        f"mined from the model's nearest neighbours from epoch 2, a {args.minutes:.0f}-minute budget; "
        f"then the ITM stage (fusion and ITM head on cached encoder outputs, lr {args.itm_lr}, batch 64, "
        f"{args.itm_minutes:.0f} minutes).\n\n"
        "Held-out test split (colour, shape, motion combinations never seen in training):\n\n"
        f"| figure | value |\n|---|---|\n{figures}\n\nEvery figure, by metric and direction: metrics.json.\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "bundled-model")
    parser.add_argument("--minutes", type=float, default=52.0, help="time budget of the joint ITC + ITM stage")
    parser.add_argument("--itm-minutes", type=float, default=8.0, help="time budget of the ITM stage")
    parser.add_argument("--itm-lr", type=float, default=1e-3)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--hard-batches",
        type=float,
        default=0.5,
        help="share of batches mined from the model's own nearest neighbours from epoch 2: random in-batch negatives "
        "rarely share colour and background, so without them the model never has to tell shapes apart",
    )
    parser.add_argument("--queue-size", type=int, default=0, help="momentum queue of ITC negatives (mPLUG v1)")
    parser.add_argument("--rerank-k", type=int, default=32)
    parser.add_argument("--install", action="store_true", help=f"copy the result to {TARGET}")
    args = parser.parse_args()
    data = args.work / "synthetic"
    if not (data / "manifest.json").exists():
        run(
            "make-synthetic",
            "--out",
            str(data),
            "--seed",
            "0",
            "--videos",
            "4000",
            "--images",
            "1000",
            "--long-videos",
            "4",
        )
    from indexer.synthetic.vocab import write_synthetic_vocab

    vocab = write_synthetic_vocab(args.work / "vocab.txt")
    train_dir = args.work / "train"
    if not finished(train_dir):
        joint_stage(args, data, vocab, train_dir)
    # Stage 2: the fusion encoder and ITM head alone on cached encoder outputs (see mplug2/train/itm_stage.py).
    final_dir = args.work / "itm"
    if not finished(final_dir):
        itm_stage(args, data, train_dir, final_dir)
    measure_and_install(args, data, final_dir)


def finished(stage_dir: Path) -> bool:
    """A stage is done once its model folder is written (the last thing `train` does); rerunning skips it."""
    return (stage_dir / "model" / "model.safetensors").is_file()


def joint_stage(args: argparse.Namespace, data: Path, vocab: Path, train_dir: Path) -> None:
    run(
        "train",
        "--model",
        "mplug2-small",
        "--vocab",
        str(vocab),
        "--media",
        str(data),
        "--annotations",
        str(data / "annotations" / "train_videos.jsonl"),
        "--annotations",
        str(data / "annotations" / "train_images.jsonl"),
        "--out",
        str(train_dir),
        "--epochs",
        str(args.epochs),
        "--lr",
        str(args.lr),
        "--batch-size",
        str(args.batch_size),
        "--warmup-steps",
        "300",
        "--queue-size",
        str(args.queue_size),
        "--hard-batches",
        str(args.hard_batches),
        "--frame-cache",
        str(args.work / "frames"),
        "--time-limit",
        str(args.minutes),
        "--seed",
        "0",
        "--fp16-weights",
    )


def itm_stage(args: argparse.Namespace, data: Path, train_dir: Path, final_dir: Path) -> None:
    run(
        "train",
        "--stage",
        "itm",
        "--model",
        str(train_dir / "model"),
        "--media",
        str(data),
        "--annotations",
        str(data / "annotations" / "train_videos.jsonl"),
        "--annotations",
        str(data / "annotations" / "train_images.jsonl"),
        "--frame-cache",
        str(args.work / "frames"),
        "--out",
        str(final_dir),
        "--lr",
        str(args.itm_lr),
        "--batch-size",
        "64",
        "--time-limit",
        str(args.itm_minutes),
        "--seed",
        "0",
        "--fp16-weights",
    )


def measure_and_install(args: argparse.Namespace, data: Path, final_dir: Path) -> None:
    from indexer.evaluation.runner import EvalSettings
    from indexer.synthetic.quality import measure
    from mplug2 import load_model_bundle

    torch.manual_seed(0)
    bundle = load_model_bundle(final_dir / "model")
    report = measure(bundle, data, args.work / "eval-cache", EvalSettings(rerank_k=args.rerank_k))
    (final_dir / "model" / "metrics.json").write_text(json.dumps(report, indent=1) + "\n")
    headline = {k: v for k, v in report.items() if not isinstance(v, dict)}
    print(json.dumps(headline, indent=1))
    write_model_card(final_dir / "model", headline, args)
    if args.install:
        shutil.rmtree(TARGET, ignore_errors=True)
        shutil.copytree(final_dir / "model", TARGET)
        print(f"installed {TARGET}")


if __name__ == "__main__":
    main()
