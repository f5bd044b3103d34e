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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "bundled-model")
    parser.add_argument("--minutes", type=float, default=55.0, help="training time budget")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=32)
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
        "--time-limit",
        str(args.minutes),
        "--seed",
        "0",
        "--fp16-weights",
    )
    from indexer.evaluation.runner import EvalSettings
    from indexer.synthetic.quality import measure
    from mplug2 import load_model_bundle

    torch.manual_seed(0)
    bundle = load_model_bundle(train_dir / "model")
    report = measure(bundle, data, args.work / "eval-cache", EvalSettings(rerank_k=args.rerank_k))
    (train_dir / "model" / "metrics.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: v for k, v in report.items() if not isinstance(v, dict)}, indent=1))
    if args.install:
        shutil.rmtree(TARGET, ignore_errors=True)
        shutil.copytree(train_dir / "model", TARGET)
        print(f"installed {TARGET}")


if __name__ == "__main__":
    main()
