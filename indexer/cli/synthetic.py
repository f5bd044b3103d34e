"""`mplug2-search make-synthetic`: the synthetic shapes benchmark (real encoded files with captions)."""

from __future__ import annotations

from pathlib import Path

import click

from indexer.cli import cli


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
