"""Model commands: `models` (what can be built or loaded), `fetch-checkpoint` (known checkpoint or URL → model
folder in one step), `convert-checkpoint` (an official .pth already on disk → model folder)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import click

from indexer.cli import cli
from indexer.cli.errors import UserError, user_errors


@cli.command()
def models() -> None:
    """List model configs and known checkpoints, which are fetched, and how each model folder re-ranks."""
    from indexer.search.scoring import RerankChoice
    from indexer.settings import default_model_dir
    from mplug2.factory import list_models, resolve_folder
    from mplug2.pretrained import KNOWN_CHECKPOINTS
    from mplug2.runtime.offered import checked, withheld

    for name in list_models():
        known = KNOWN_CHECKPOINTS.get(name)
        if known is None:
            click.echo(f"{name:24} architecture: random weights (for tests and training from scratch)")
            continue
        folder = resolve_folder(name) if known.format != "clip" else None
        if known.format == "clip":
            state = f"fetch with `mplug2-search fetch-checkpoint {name}` (not a search model by itself)"
        elif folder is not None:
            state = f"ready in {folder}: use --model {name}; {RerankChoice.of_model(str(folder)).summary()}"
            state += "".join(f"\n{'':24} {precision} not offered: {why}" for precision, why in withheld(folder).items())
        else:
            state = f"not fetched: `mplug2-search fetch-checkpoint {name}`"
        click.echo(f"{name:24} {known.notes}\n{'':24} {state}")
    bundled = default_model_dir()
    click.echo(f"\ndefault model: {bundled}\n  {RerankChoice.of_model(str(bundled)).summary()}")
    refused = withheld(bundled)
    for precision, why in refused.items():
        click.echo(f"  {precision} not offered: {why}")
    # A precision measured and kept is worth saying too: the user learns int8 is safe to ask for, and by how much.
    for precision, why in checked(bundled).items():
        if precision not in refused:
            click.echo(f"  {precision} offered: {why}")
    _print_exports()


def _print_exports() -> None:
    """The fast-runtime exports in the home's cache, with their drift from torch."""
    from indexer.settings import default_home
    from indexer.store.runtime import CACHE_DIR
    from mplug2.runtime.cache import list_exports

    records = list_exports(default_home() / CACHE_DIR)
    if not records:
        return
    click.echo("\nruntime exports (cosine to torch on held-out inputs; --runtime/--precision pick them):")
    for record in records:
        click.echo(
            f"  {record.get('model')}: {record.get('runtime')} {record.get('precision')} {record.get('version')}"
        )
        for graph, entry in sorted(record["graphs"].items()):
            click.echo(
                f"    {graph:6} cosine min {entry['cosine_min']:.5f} mean {entry['cosine_mean']:.5f}, "
                f"max |diff| {entry['max_abs_diff']:.2g} on {entry['validated_on']}"
            )


@dataclass(frozen=True)
class Conversion:
    """The flags every checkpoint command shares: what the official loader may accept and the stored precision."""

    fp16: bool = False
    trust_pickle: bool = False
    allow_missing_heads: bool = False

    def loader_args(self) -> dict:
        import torch

        return {
            "trust_pickle": self.trust_pickle,
            "allow_missing_heads": self.allow_missing_heads,
            "dtype": torch.float16 if self.fp16 else torch.float32,
        }


@dataclass(frozen=True)
class OfficialFiles:
    """What a checkpoint fetched from a URL needs beside it to become a model (known checkpoints record these)."""

    bert_config: str | None
    vision: str
    vocab: str | None
    num_frames: int | None
    embed_dim: int


def _convert_options(function):
    """--fp16, --trust-pickle and --allow-missing-heads, handed to the command as one `conversion` record."""

    @functools.wraps(function)
    def command(*args, fp16: bool, trust_pickle: bool, allow_missing_heads: bool, **kwargs):
        return function(*args, conversion=Conversion(fp16, trust_pickle, allow_missing_heads), **kwargs)

    command = click.option("--fp16", is_flag=True, help="Store the weights as float16 (half the size).")(command)
    command = click.option(
        "--trust-pickle",
        is_flag=True,
        help="Allow pickled objects in the file (runs code from it: trusted files only).",
    )(command)
    return click.option(
        "--allow-missing-heads", is_flag=True, help="Accept a checkpoint without ITC/ITM heads (they start random)."
    )(command)


@cli.command("convert-checkpoint")
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--arch",
    default="mplug2-large",
    show_default=True,
    help="The architecture: a config or known checkpoint from `models` (ignored with --bert-config).",
)
@click.option(
    "--bert-config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="An official BERT config json (e.g. configs/config_bert_large_text.json) instead of --arch.",
)
@click.option("--vision", default="large", show_default=True, help="With --bert-config: large, base, or a JSON file.")
@click.option(
    "--vocab",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The WordPiece vocab (default: bert-base-uncased's, shipped with mplug2).",
)
@click.option("--image-size", type=int, help="Input resolution if not the ViT's (position embeddings are resized).")
@click.option("--num-frames", type=int, help="Frames per clip the model is used with (16 for the released model).")
@click.option("--embed-dim", type=int, default=256, show_default=True, help="With --bert-config: ITC projection size.")
@_convert_options
def convert_checkpoint(
    checkpoint: Path,
    out_dir: Path,
    arch: str,
    bert_config: Path | None,
    vision: str,
    vocab: Path | None,
    image_size: int | None,
    num_frames: int | None,
    embed_dim: int,
    conversion: Conversion,
) -> None:
    """Convert an official mPLUG-2 checkpoint (.pth) on disk into this project's model folder format."""
    import dataclasses

    from mplug2.checkpoint import CheckpointError
    from mplug2.convert import config_from_official_files, convert_official_checkpoint
    from mplug2.factory import get_config, known_config
    from mplug2.pretrained import BERT_VOCAB, KNOWN_CHECKPOINTS

    with user_errors(CheckpointError, ValueError):
        if bert_config is not None:
            config = config_from_official_files(
                out_dir.name, bert_config, vision, image_size=image_size, num_frames=num_frames, embed_dim=embed_dim
            )
        else:
            known = KNOWN_CHECKPOINTS.get(arch)
            config = known_config(known) if known is not None else get_config(arch)
            config = dataclasses.replace(config, name=out_dir.name)
            if num_frames is not None:
                config = dataclasses.replace(
                    config, preprocess=dataclasses.replace(config.preprocess, num_frames=num_frames)
                )
            if image_size is not None:
                config = dataclasses.replace(config, vision=dataclasses.replace(config.vision, image_size=image_size))
        report = convert_official_checkpoint(
            checkpoint, config, out_dir, vocab or BERT_VOCAB, **conversion.loader_args()
        )
    click.echo(report.summary())
    click.echo(f"wrote {out_dir} (use it with --model {out_dir})")


@cli.command("fetch-checkpoint")
@click.argument("name")
@click.option("--url", help="Download from here instead of the recorded address (e.g. a mirror).")
@click.option(
    "--from-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A copy you downloaded yourself: verified and converted, nothing is downloaded.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="For a URL: the model folder to write (default: models/NAME in the home folder).",
)
@click.option("--bert-config", help="For a URL: the official BERT config json (a URL or a file).")
@click.option("--vision", default="large", show_default=True, help="For a URL: large, base, or a JSON file (or URL).")
@click.option("--vocab", help="For a URL: the WordPiece vocab, a URL or a file (default: bert-base-uncased's).")
@click.option("--num-frames", type=int, help="For a URL: frames per clip the model was trained with.")
@click.option("--embed-dim", type=int, default=256, show_default=True, help="For a URL: ITC projection size.")
@_convert_options
def fetch_checkpoint(
    name: str,
    url: str | None,
    from_file: Path | None,
    out_dir: Path | None,
    bert_config: str | None,
    vision: str,
    vocab: str | None,
    num_frames: int | None,
    embed_dim: int,
    conversion: Conversion,
) -> None:
    """Get a checkpoint and turn it into a model folder in one step (the only command that uses the network).

    NAME is a known checkpoint (see `models`), or the http(s) URL of an official-format .pth together with
    --bert-config and --vision. Without internet, download the file by hand and pass --from-file.
    """
    from mplug2.checkpoint import CheckpointError
    from mplug2.download import ChecksumError, DownloadError

    with user_errors(CheckpointError, ChecksumError, ValueError):
        try:
            if "://" in name:
                files = OfficialFiles(bert_config, vision, vocab, num_frames, embed_dim)
                folder, report = _fetch_url(name, out_dir, files, conversion)
                model = str(folder)
            else:
                from mplug2.convert import install_known_checkpoint

                fetched = install_known_checkpoint(name, url=url, from_file=from_file, **conversion.loader_args())
                if fetched.folder is None:
                    click.echo(f"saved {fetched.checkpoint}")
                    return
                folder, report, model = fetched.folder, fetched.report, name
        except DownloadError as error:
            raise UserError(_manual_path(name, error)) from None
    click.echo(report.summary())
    click.echo(f"model folder: {folder}")
    click.echo(f"next: mplug2-search index FOLDER --model {model} --index-dir NEW_DIR  (an archive keeps one model)")


def _manual_path(name: str, error: Exception) -> str:
    """What was tried, the official addresses, and how to finish by hand."""
    from mplug2.pretrained import KNOWN_CHECKPOINTS

    lines = [f"could not download {name}: tried {error}"]
    known = KNOWN_CHECKPOINTS.get(name)
    if known is not None and known.url:
        lines.append(f"the official file: {known.url}")
        lines.append(f"download it by hand, then: mplug2-search fetch-checkpoint {name} --from-file PATH/{known.file}")
    else:
        lines.append("download the files by hand, then: mplug2-search convert-checkpoint FILE --out FOLDER ...")
    return "\n".join(lines)


def _fetch_url(url: str, out_dir: Path | None, files: OfficialFiles, conversion: Conversion):
    """An official-format checkpoint from any address, with its BERT config (and vocab): fetched, converted."""
    from mplug2.convert import config_from_official_files, convert_official_checkpoint
    from mplug2.download import download, fetch_to
    from mplug2.pretrained import BERT_VOCAB, models_dir

    if files.bert_config is None:
        raise UserError(f"{url} is not a known checkpoint: give its --bert-config (a URL or a file) and --vision")
    stem = Path(url.split("?")[0].rstrip("/")).stem or "model"
    folder = out_dir or models_dir() / stem
    downloads = folder.with_name(folder.name + ".download")
    checkpoint = download(url, downloads / "checkpoint.pth")
    bert_file = fetch_to(files.bert_config, downloads / "bert_config.json")
    vision = files.vision
    vision = vision if vision in ("large", "base") else str(fetch_to(vision, downloads / "vision.json"))
    vocab_file = fetch_to(files.vocab, downloads / "vocab.txt") if files.vocab else BERT_VOCAB
    config = config_from_official_files(
        folder.name, bert_file, vision, num_frames=files.num_frames, embed_dim=files.embed_dim
    )
    report = convert_official_checkpoint(checkpoint, config, folder, vocab_file, **conversion.loader_args())
    return folder, report
