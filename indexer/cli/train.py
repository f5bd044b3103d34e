"""`mplug2-search train`: ITC + ITM training (or fine-tuning) on captioned videos and images."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from indexer.cli import cli
from mplug2.train.config import ITMStageConfig, TrainConfig


@cli.command()
@click.option("--model", "model_name", required=True, help="A config name (random start) or a model folder.")
@click.option(
    "--annotations",
    multiple=True,
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="jsonl/json with video|image and caption (repeatable).",
)
@click.option("--media", "media_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--vocab",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="WordPiece vocab (default: the model folder's).",
)
@click.option("--epochs", type=int, default=10, show_default=True)
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--grad-accum", type=int, default=1, show_default=True)
@click.option("--lr", type=float, default=1e-4, show_default=True)
@click.option("--warmup-steps", type=int, default=100, show_default=True)
@click.option(
    "--queue-size",
    type=int,
    default=0,
    show_default=True,
    help="Momentum encoders with feature queues and distillation (mPLUG v1: 65536); 0 = in-batch ITC.",
)
@click.option(
    "--hard-batches",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of samples trained in batches of caption neighbours: hard in-batch negatives that differ in one or "
    "two details.",
)
@click.option(
    "--reversed-twins",
    type=click.FloatRange(0, 1),
    default=TrainConfig.reversed_twins,
    show_default=True,
    help="Share of videos whose caption names a direction that are joined in their batch by a time-reversed twin "
    "(frames played backwards, direction phrases swapped): teaches time order. Needs --direction-phrases.",
)
@click.option(
    "--direction-phrases",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help='JSON pairs of opposite phrases for --reversed-twins, e.g. [["rises", "falls"], ["grows", "shrinks"]].',
)
@click.option(
    "--itm-random-negatives",
    type=click.FloatRange(0, 1),
    default=TrainConfig.itm_random_negatives,
    show_default=True,
    help="Share of ITM negatives drawn at random instead of by ITC similarity (hard negatives alone can leave ITM "
    "at a constant guess).",
)
@click.option(
    "--itm-mined-negatives",
    type=click.FloatRange(0, 1),
    default=ITMStageConfig.mined_negatives,
    show_default=True,
    help="--stage itm: share of ITM negatives drawn from each caption's (and item's) ITC nearest neighbours across "
    "the whole set, the candidates a re-ranker meets, instead of from the batch.",
)
@click.option(
    "--itm-mine-top-k",
    type=click.IntRange(min=1),
    default=ITMStageConfig.mine_top_k,
    show_default=True,
    help="--stage itm: how many ITC neighbours --itm-mined-negatives draws from.",
)
@click.option(
    "--itm-rank-weight",
    type=click.FloatRange(min=0),
    default=ITMStageConfig.rank_weight,
    show_default=True,
    help="--stage itm: weight of a listwise loss that ranks each caption's own item first among its ITC neighbours "
    "by the engine's final score (ITC logit + ITM log-odds): what re-ranking asks of the ITM head.",
)
@click.option(
    "--itm-rank-candidates",
    type=click.IntRange(min=2),
    default=ITMStageConfig.rank_candidates,
    show_default=True,
    help="--stage itm: candidates per caption in --itm-rank-weight's ranking (its own item and its nearest others).",
)
@click.option(
    "--caption-negatives",
    type=click.FloatRange(0, 1),
    default=TrainConfig.caption_negatives,
    show_default=True,
    help="Share of samples whose caption, with one attribute phrase swapped for another value's, is an extra ITC "
    "and ITM negative: teaches what in-batch negatives rarely test. Needs --attribute-words.",
)
@click.option(
    "--partial-captions",
    type=click.FloatRange(0, 1),
    default=TrainConfig.partial_captions,
    show_default=True,
    help="Share of samples whose caption is cut down to its --partial-attributes phrases ('star'), a positive for "
    "every video in the batch of those values: only they can match it. Needs --attribute-words; not with a queue.",
)
@click.option(
    "--partial-attributes",
    default="+".join(TrainConfig.partial_attributes),
    show_default=True,
    help="The attribute groups (of --attribute-words) a partial caption keeps, joined by '+'.",
)
@click.option(
    "--attribute-words",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help='JSON groups of exclusive attribute phrases for --caption-negatives and --partial-captions, e.g. {"shape": '
    '{"circle": ["circle", "disc"], "square": ["square"]}}.',
)
@click.option(
    "--separation-margin",
    type=click.FloatRange(0, 1, max_open=True),
    default=TrainConfig.separation_margin,
    show_default=True,
    help="> 0: keep a caption and its one-attribute-changed negative, and a video and its time-reversed twin (their "
    "captions too), below this cosine within their own encoder. Breaks the standstill where neither encoder learns "
    "an attribute because the other does not show it yet. 0: off.",
)
@click.option(
    "--temporal-lr-scale",
    type=click.FloatRange(min=0, min_open=True),
    default=TrainConfig.temporal_lr_scale,
    show_default=True,
    help="Learning rate of the video encoder's temporal adapters (lmhra) as a multiple of --lr: they start near zero "
    "and at the common rate stay there, so the model never learns time order.",
)
@click.option(
    "--text-lr-scale",
    type=click.FloatRange(min=0),
    default=TrainConfig.text_lr_scale,
    show_default=True,
    help="Learning rate of the text tower (text encoder with the universal layers the visual tokens pass through "
    "too, and text_proj) as a multiple of --lr. 0 holds it still: a new visual tower learns to meet a trained "
    "model's text embeddings.",
)
@click.option("--frames", type=int, help="Frames per clip (default: the model's).")
@click.option(
    "--image-size",
    type=click.IntRange(min=1),
    help="Input size to train at (default: the model's). A model made at another size has its position grid "
    "resized: fine-tuning at a higher resolution than it was trained at helps it see small shapes.",
)
@click.option("--max-steps", type=int, help="Stop after this many optimizer steps.")
@click.option("--time-limit", type=float, help="Stop (and checkpoint) after this many minutes.")
@click.option("--checkpoint-every", type=int, default=200, show_default=True, help="Optimizer steps per checkpoint.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workers", type=int, default=2, show_default=True, help="Decode processes for the frame cache.")
@click.option(
    "--stage",
    type=click.Choice(["joint", "itm"]),
    default="joint",
    show_default=True,
    help="joint: every weight, ITC + ITM. itm: the fusion encoder and ITM head only, encoders frozen and their "
    "outputs cached (a fast second stage; --max-steps, --time-limit, --batch-size, --lr, --itm-* and "
    "--caption-negatives apply; --reversed-twins > 0 gives every direction video its twin).",
)
@click.option(
    "--frame-cache",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where decoded training frames are cached (default: OUT/cache); share it between runs on the same data.",
)
@click.option("--fp16-weights", is_flag=True, help="Store the final weights as float16.")
@click.option("--no-resume", is_flag=True, help="Start over even if OUT holds a checkpoint.")
def train(
    model_name: str,
    annotations: tuple[Path, ...],
    media_dir: Path,
    out_dir: Path,
    vocab: Path | None,
    epochs: int,
    batch_size: int,
    grad_accum: int,
    lr: float,
    warmup_steps: int,
    queue_size: int,
    hard_batches: float,
    reversed_twins: float,
    direction_phrases: Path | None,
    itm_random_negatives: float,
    itm_mined_negatives: float,
    itm_mine_top_k: int,
    itm_rank_weight: float,
    itm_rank_candidates: int,
    caption_negatives: float,
    partial_captions: float,
    partial_attributes: str,
    attribute_words: Path | None,
    separation_margin: float,
    temporal_lr_scale: float,
    text_lr_scale: float,
    frames: int | None,
    image_size: int | None,
    max_steps: int | None,
    time_limit: float | None,
    checkpoint_every: int,
    seed: int,
    workers: int,
    stage: str,
    frame_cache: Path | None,
    fp16_weights: bool,
    no_resume: bool,
) -> None:
    """Train or fine-tune a model with ITC and ITM; resumes from OUT/checkpoints when interrupted."""
    import torch

    from indexer.training_data import CaptionedMedia, read_annotations
    from mplug2 import create_model, save_model_folder
    from mplug2.factory import at_image_size, vocab_for
    from mplug2.tokenizer import Tokenizer
    from mplug2.train.caption_negatives import AttributeSwapper, read_attribute_words
    from mplug2.train.trainer import Trainer
    from mplug2.train.twins import PhraseSwapper, read_phrase_pairs

    if reversed_twins > 0 and direction_phrases is None:
        raise click.UsageError("--reversed-twins needs --direction-phrases (the phrases a reversed video swaps)")
    if caption_negatives > 0 and attribute_words is None:
        raise click.UsageError("--caption-negatives needs --attribute-words (the phrases a negative caption swaps)")
    if partial_captions > 0 and attribute_words is None:
        raise click.UsageError("--partial-captions needs --attribute-words (the phrases a partial caption keeps)")
    if partial_captions > 0 and queue_size > 0:
        raise click.UsageError("--partial-captions match several videos each: train them with --queue-size 0")
    swapper = PhraseSwapper(read_phrase_pairs(json.loads(direction_phrases.read_text()))) if direction_phrases else None
    attributes = (
        AttributeSwapper(read_attribute_words(json.loads(attribute_words.read_text()))) if attribute_words else None
    )
    torch.manual_seed(seed)
    vocab = vocab or vocab_for(model_name)
    if vocab is None:
        raise click.UsageError("a config name starts from random weights and needs --vocab")
    model = create_model(model_name)
    if image_size is not None:
        try:
            model = at_image_size(model, image_size)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--image-size") from None
    tokenizer = Tokenizer(vocab, max_words=model.config.preprocess.max_words)
    items = read_annotations(annotations)
    dataset = CaptionedMedia(
        items, media_dir, model.config, frame_cache or out_dir / "cache", workers=workers, num_frames=frames
    )
    click.echo(f"{len(dataset)} captioned samples from {len(items)} items ({len(dataset.failed)} could not be read)")
    if stage == "itm":
        config = ITMStageConfig(
            max_steps=max_steps or ITMStageConfig.max_steps,
            batch_size=batch_size,
            lr=lr,
            time_limit_s=time_limit * 60 if time_limit else None,
            seed=seed,
            random_negatives=itm_random_negatives,
            mined_negatives=itm_mined_negatives,
            mine_top_k=itm_mine_top_k,
            rank_weight=itm_rank_weight,
            rank_candidates=itm_rank_candidates,
            caption_negatives=caption_negatives,
        )
        twins = swapper if reversed_twins > 0 else None
        _itm_stage(model, tokenizer, dataset, vocab, out_dir, config, fp16_weights, attributes, twins)
        return
    config = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        grad_accum=grad_accum,
        lr=lr,
        warmup_steps=warmup_steps,
        queue_size=queue_size,
        hard_batches=hard_batches,
        reversed_twins=reversed_twins,
        itm_random_negatives=itm_random_negatives,
        caption_negatives=caption_negatives,
        partial_captions=partial_captions,
        partial_attributes=tuple(name for name in partial_attributes.split("+") if name),
        separation_margin=separation_margin,
        temporal_lr_scale=temporal_lr_scale,
        text_lr_scale=text_lr_scale,
        max_steps=max_steps,
        time_limit_s=time_limit * 60 if time_limit else None,
        seed=seed,
        checkpoint_every=checkpoint_every,
    )
    try:
        trainer = Trainer(model, tokenizer, dataset, config, out_dir, swapper, attributes)
    except ValueError as error:  # settings that cannot work together, or a set too small for one batch
        raise click.UsageError(str(error)) from None
    result = trainer.train(resume=not no_resume)
    (out_dir / "train_log.jsonl").write_text("".join(json.dumps(row) + "\n" for row in result.losses))
    provenance = {
        "training": asdict(config),
        "annotations": [str(a) for a in annotations],
        "steps": result.steps,
        "seconds": round(result.seconds, 1),
        "stopped_early": result.stopped_early,
    }
    folder = save_model_folder(
        model, vocab, out_dir / "model", torch.float16 if fp16_weights else torch.float32, provenance
    )
    last = result.losses[-1]["loss"] if result.losses else float("nan")
    click.echo(f"trained {result.steps} steps in {result.seconds / 60:.1f} min (last loss {last:.3f}); model: {folder}")


def _itm_stage(model, tokenizer, dataset, vocab, out_dir, config, fp16, attributes, directions) -> None:
    import time

    import numpy as np
    import torch

    from mplug2 import save_model_folder
    from mplug2.train.itm_stage import encode_set, train_itm_stage

    started = time.monotonic()
    attributes = attributes if config.caption_negatives > 0 else None
    encoded = encode_set(
        model, tokenizer, dataset, len(dataset), seed=config.seed, attributes=attributes, directions=directions
    )
    click.echo(f"encoded {len(dataset)} samples with the frozen encoders in {time.monotonic() - started:.0f} s")
    if config.time_limit_s is not None:  # the limit covers the encoding too
        config.time_limit_s -= time.monotonic() - started
    losses = train_itm_stage(model, encoded, dataset, config)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "itm_log.jsonl").write_text("".join(json.dumps(row) + "\n" for row in losses))
    seconds = time.monotonic() - started
    provenance = {"itm_stage": asdict(config), "steps": len(losses), "seconds": round(seconds, 1)}
    folder = save_model_folder(model, vocab, out_dir / "model", torch.float16 if fp16 else torch.float32, provenance)
    first, last = np.mean([r["itm"] for r in losses[:50]]), np.mean([r["itm"] for r in losses[-50:]])
    click.echo(
        f"ITM stage: {len(losses)} steps in {seconds / 60:.1f} min, ITM loss {first:.3f} -> {last:.3f}; model: {folder}"
    )
