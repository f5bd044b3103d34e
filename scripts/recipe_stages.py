"""How the bundled-model recipe runs each of its stages (scripts/bundled_model.py decides their order): each writes a
model folder, and a stage whose folder exists is done. All but the graft are one `mplug2-search` command."""

from __future__ import annotations

import argparse
from pathlib import Path

from mplug2_cli import mplug2_search  # scripts/ is on the path of a script run from it


def finished(stage_dir: Path) -> bool:
    """A stage is done once its model folder is written (the last thing `train` does); rerunning skips it."""
    return (stage_dir / "model" / "model.safetensors").is_file()


def label_stage(args: argparse.Namespace, vocab: Path, out: Path, start: str, steps: int, attributes: str) -> None:
    """The visual tower alone names the `attributes` (joined by +) of freshly rendered frames
    (mplug2/train/label_stage.py)."""
    mplug2_search(
        "pretrain-synthetic",
        *("--model", start, "--vocab", str(vocab), "--out", str(out)),
        *("--steps", str(steps), "--image-size", str(args.label_size), "--seed", "0"),
        *(("--conv-branch",) if args.conv_branch else ()),
        *(option for name in attributes.split("+") for option in ("--attributes", name)),
    )


def relabel_and_polish(
    args: argparse.Namespace,
    data: Path,
    vocab: Path,
    polished: Path,
    phrases: Path,
    attribute_words: Path,
    share: float,
) -> Path:
    """The polished model's own tower names the labelled attributes again: after the contrastive stages shape is what
    its ITC vector tells apart worst (every wrong first video differs in shape), and a label asks for it in every
    sample. Its projection moves, so the polish stage runs again to bring the text tower along. Returns its model."""
    relabel_dir, repolish_dir = args.work / "relabel", args.work / "repolish"
    if not finished(relabel_dir):
        label_stage(args, vocab, relabel_dir, str(polished), args.relabel_steps, args.relabel_attributes)
    if not finished(repolish_dir):
        polish_stage(args, data, relabel_dir / "model", repolish_dir, phrases, attribute_words, share)
    return repolish_dir / "model"


def polish_stage(
    args: argparse.Namespace, data: Path, start: Path, out: Path, phrases: Path, attribute_words: Path, share: float
) -> None:
    """The motion recipe with every weight, the text tower's too, for --polish-steps at --polish-lr: after the meet
    stage, and again after the relabel stage."""
    steps, lr = args.polish_steps, args.polish_lr
    motion_stage(args, data, start, out, phrases, attribute_words, steps, share, lr=lr)


def graft_visual_tower(start: Path, labelled: Path, out: Path) -> Path:
    """`start` with the label stage's visual tower in place of its own (`mplug2.factory.with_visual_tower`)."""
    from mplug2 import save_model_folder
    from mplug2.factory import with_visual_tower
    from mplug2.folder import VOCAB, load_model_folder

    model = with_visual_tower(load_model_folder(start), load_model_folder(labelled))
    return save_model_folder(model, start / VOCAB, out)


def joint_stage(args: argparse.Namespace, data: Path, vocab: Path, train_dir: Path, start: str) -> None:
    mplug2_search(
        "train",
        *("--model", start, "--vocab", str(vocab), "--media", str(data)),
        *("--annotations", str(data / "annotations" / "train_videos.jsonl")),
        *("--annotations", str(data / "annotations" / "train_images.jsonl")),
        *("--out", str(train_dir), "--epochs", str(args.epochs), "--lr", str(args.lr)),
        *("--batch-size", str(args.batch_size), "--warmup-steps", "300", "--queue-size", str(args.queue_size)),
        *("--hard-batches", str(args.hard_batches), "--frame-cache", str(args.work / "frames")),
        *("--time-limit", str(args.minutes), "--seed", "0", "--fp16-weights"),
    )


def motion_stage(
    args: argparse.Namespace,
    data: Path,
    start: Path,
    out: Path,
    phrases: Path,
    attribute_words: Path,
    steps: int,
    caption_negatives: float,
    lr: float | None = None,
    image_size: int | None = None,
    seed: int = 0,
    extra: tuple[str, ...] = (),
) -> None:
    """Every weight again, from the previous stage's model: each direction video beside its time-reversed twin in
    the same batch (only time order tells them apart, so the temporal adapters must learn it), half the batches of
    the model's own nearest neighbours, half the ITM negatives at random (hard ones alone leave ITM guessing)."""
    mplug2_search(
        "train",
        *("--model", str(start)),
        *("--media", str(data)),
        *("--annotations", str(data / "annotations" / "train_videos.jsonl")),
        *("--annotations", str(data / "annotations" / "train_images.jsonl")),
        *("--out", str(out)),
        *("--epochs", "100", "--max-steps", str(steps)),
        *("--lr", str(lr or args.motion_lr), "--warmup-steps", "100", "--batch-size", str(args.batch_size)),
        *("--hard-batches", str(args.hard_batches)),
        *("--reversed-twins", str(args.twins), "--direction-phrases", str(phrases)),
        *("--itm-random-negatives", str(args.itm_random_negatives)),
        *("--caption-negatives", str(caption_negatives), "--attribute-words", str(attribute_words)),
        *("--separation-margin", str(args.separation_margin), "--temporal-lr-scale", str(args.temporal_lr_scale)),
        *("--frame-cache", str(args.work / "frames"), "--seed", str(seed), "--fp16-weights"),
        *(("--image-size", str(image_size)) if image_size else ()),
        *extra,
    )


def itm_stage(
    args: argparse.Namespace, data: Path, start: Path, out: Path, minutes: float, random_negatives: float
) -> None:
    mplug2_search(
        "train",
        *("--stage", "itm", "--model", str(start / "model")),
        *("--media", str(data)),
        *("--annotations", str(data / "annotations" / "train_videos.jsonl")),
        *("--annotations", str(data / "annotations" / "train_images.jsonl")),
        *("--frame-cache", str(args.work / "frames"), "--out", str(out)),
        *("--lr", str(args.itm_lr), "--batch-size", "64", "--time-limit", str(minutes)),
        *("--itm-random-negatives", str(random_negatives), "--seed", "0", "--fp16-weights"),
    )
