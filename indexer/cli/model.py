"""Model commands: `models` (what can be built or loaded), `convert-checkpoint`, `fetch-checkpoint`."""

from __future__ import annotations

from pathlib import Path

import click

from indexer.cli import cli


@cli.command()
def models() -> None:
    """List model configs and known checkpoints."""
    from mplug2.factory import list_models
    from mplug2.pretrained import KNOWN_CHECKPOINTS

    for name in list_models():
        known = KNOWN_CHECKPOINTS.get(name)
        click.echo(f"{name:24} {known.notes if known else 'architecture (random weights unless --pretrained)'}")


@cli.command("convert-checkpoint")
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--bert-config",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The official BERT config json (e.g. configs/config_bert_large_text.json).",
)
@click.option("--vision", default="large", show_default=True, help="large, base, or a JSON file of ViT settings.")
@click.option(
    "--vocab",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The WordPiece vocab (bert-base-uncased's vocab.txt for the released models).",
)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--image-size", type=int, help="Input resolution if not the ViT's (position embeddings are resized).")
@click.option("--num-frames", type=int, help="Frames per clip the model is used with (16 for the released model).")
@click.option("--embed-dim", type=int, default=256, show_default=True, help="ITC projection size.")
@click.option("--fp16", is_flag=True, help="Store the weights as float16 (half the size; upcast on load).")
@click.option("--trust-pickle", is_flag=True, help="Allow pickled objects in the file (runs code from it).")
@click.option("--allow-missing-heads", is_flag=True, help="Accept a checkpoint without ITC/ITM heads (random heads).")
def convert_checkpoint(
    checkpoint: Path,
    bert_config: Path,
    vision: str,
    vocab: Path,
    out_dir: Path,
    image_size: int | None,
    num_frames: int | None,
    embed_dim: int,
    fp16: bool,
    trust_pickle: bool,
    allow_missing_heads: bool,
) -> None:
    """Convert an official mPLUG-2 checkpoint (.pth) into this project's model folder format."""
    import torch

    from mplug2.checkpoint import CheckpointError
    from mplug2.convert import convert_official_checkpoint

    try:
        report = convert_official_checkpoint(
            checkpoint,
            bert_config,
            vision,
            vocab,
            out_dir,
            image_size=image_size,
            num_frames=num_frames,
            embed_dim=embed_dim,
            trust_pickle=trust_pickle,
            allow_missing_heads=allow_missing_heads,
            dtype=torch.float16 if fp16 else torch.float32,
        )
    except CheckpointError as error:
        raise click.ClickException(str(error)) from None
    click.echo(report.summary())
    click.echo(f"wrote {out_dir} (use it with --model {out_dir})")


@cli.command("fetch-checkpoint")
@click.argument("name")
@click.option(
    "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("checkpoints"), show_default=True
)
@click.option("--url", help="Download from here instead of the known address (e.g. a mirror).")
def fetch_checkpoint(name: str, out_dir: Path, url: str | None) -> None:
    """Download a known checkpoint (needs internet; nothing else in mplug2-search ever downloads)."""
    from mplug2.download import download_checkpoint

    try:
        path = download_checkpoint(name, out_dir, url=url)
    except (KeyError, ValueError, OSError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"saved {path}")
