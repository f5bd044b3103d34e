"""`mplug2-search make-synthetic`: the synthetic shapes benchmark (real encoded files with captions);
`pretrain-synthetic`: a visual tower taught its attributes on rendered frames."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from indexer.cli import cli
from mplug2.train.config import LabelStageConfig


@cli.command("make-synthetic")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--videos", type=int, default=4000, show_default=True, help="Training videos.")
@click.option("--images", type=int, default=1000, show_default=True, help="Training images.")
@click.option("--test-videos", type=int, default=500, show_default=True, help="Held-out test videos.")
@click.option("--test-images", type=int, default=300, show_default=True, help="Held-out test images.")
@click.option("--long-videos", type=int, default=0, show_default=True, help="Multi-scene videos of 20-60 s.")
@click.option(
    "--direction-twins/--no-direction-twins",
    default=True,
    show_default=True,
    help="Also write each test video with a direction played backwards (test/twins/), captioned with the opposite "
    "direction, and the twin set's annotations (test_twins.jsonl; test_directions.jsonl holds the originals alone).",
)
@click.option("--workers", type=int, help="Processes (default: one per CPU core).")
def make_synthetic(
    out_dir: Path,
    seed: int,
    videos: int,
    images: int,
    test_videos: int,
    test_images: int,
    long_videos: int,
    direction_twins: bool,
    workers: int | None,
) -> None:
    """Generate the synthetic shapes benchmark: coloured shapes moving left, right, up, down, growing, shrinking,
    rotating or still, with captions; a test split of (colour, shape, motion) combinations never seen in training."""
    from tqdm import tqdm

    from indexer.synthetic.generate import generate

    with tqdm(total=0, unit="file", desc="rendering") as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        manifest = generate(
            out_dir, seed, videos, images, test_videos, test_images, long_videos, workers, progress, direction_twins
        )
    counts = ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in manifest["counts"].items() if count)
    click.echo(f"wrote {counts} to {out_dir} (annotations in {out_dir / 'annotations'})")


@cli.command("pretrain-synthetic")
@click.option("--model", "model_name", required=True, help="A config name (random start) or a model folder.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--vocab",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="WordPiece vocab (default: the model folder's).",
)
@click.option("--steps", type=click.IntRange(min=1), default=LabelStageConfig.steps, show_default=True)
@click.option(
    "--attributes",
    type=click.Choice(LabelStageConfig.attributes),
    multiple=True,
    default=LabelStageConfig.attributes,
    show_default=True,
    help="The attributes the tower learns to name (repeatable).",
)
@click.option("--batch-size", type=click.IntRange(min=2), default=LabelStageConfig.batch_size, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=LabelStageConfig.lr, show_default=True)
@click.option("--image-size", type=click.IntRange(min=1), help="Input size to train at (default: the model's).")
@click.option("--seed", type=int, default=LabelStageConfig.seed, show_default=True)
@click.option(
    "--conv-branch",
    is_flag=True,
    help="First give a patch-stem model convolutions beside its patch kernel (stem 'patch+conv', starting silent): "
    "a trained model keeps what it computes and gains the stem that, in a tower from random weights, learnt shape "
    "far faster than the patch kernel.",
)
def pretrain_synthetic(
    model_name: str,
    out_dir: Path,
    vocab: Path | None,
    steps: int,
    attributes: tuple[str, ...],
    batch_size: int,
    lr: float,
    image_size: int | None,
    seed: int,
    conv_branch: bool,
) -> None:
    """Teach a model's visual tower the benchmark's shape, colour, background and size (or --attributes) on rendered
    training frames (never a test combination), before ITC + ITM: a small tower from random weights otherwise barely
    learns shape. Writes OUT/model (1000 steps at 96 px: ~20 minutes on 2 cores); rerun the same command after an
    interruption and it resumes from its last checkpoint (every 100 steps), or continues it with more --steps."""
    import torch
    from tqdm import tqdm

    from indexer.synthetic.labelled_frames import label_counts, render_labelled_frames
    from mplug2 import create_model, save_model_folder
    from mplug2.factory import at_image_size, vocab_for, with_conv_branch
    from mplug2.train.checkpoints import CHECKPOINT
    from mplug2.train.label_stage import train_on_labels

    vocab = vocab or vocab_for(model_name)
    if vocab is None:
        raise click.UsageError("a config name starts from random weights and needs --vocab")
    model = create_model(model_name)
    if conv_branch:
        torch.manual_seed(seed)  # the branch's convolutions start random: the same ones on every run
        try:
            model = with_conv_branch(model)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--conv-branch") from None
    if image_size is not None:
        try:
            model = at_image_size(model, image_size)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--image-size") from None
    config = LabelStageConfig(steps=steps, attributes=attributes, batch_size=batch_size, lr=lr, seed=seed)
    values = {name: count for name, count in label_counts().items() if name in attributes}
    with tqdm(total=steps, desc="label stage") as bar:

        def show(step: int, accuracy: dict[str, float]) -> None:
            bar.update(step - bar.n)
            bar.set_postfix({name: f"{value:.2f}" for name, value in accuracy.items()})

        try:
            result = train_on_labels(model, render_labelled_frames, values, config, show, out_dir / CHECKPOINT)
        except ValueError as error:  # a checkpoint of other settings or another model
            raise click.ClickException(str(error)) from None
    provenance = {
        "label_stage": asdict(config),
        "frames": "rendered synthetic training frames (indexer/synthetic/labelled_frames.py)",
        "accuracy": {name: round(value, 3) for name, value in result.accuracy.items()},
        "steps": result.steps,
        "seconds": round(result.seconds, 1),
    }
    folder = save_model_folder(model, vocab, out_dir / "model", torch.float32, provenance)
    accuracy = ", ".join(f"{name} {value:.2f}" for name, value in result.accuracy.items())
    click.echo(
        f"trained {result.steps} steps in {result.seconds / 60:.1f} min (last batches: {accuracy}); model: {folder}"
    )
