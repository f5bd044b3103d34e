"""Archive commands: `index`, `search`, `status`, `verify`, `rebuild-index`."""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import click

from indexer.cli import cli
from indexer.cli.errors import UserError
from indexer.options import IndexOptions

_INDEX = IndexOptions()  # the `index` command's defaults are the library's
_SEGMENT = _INDEX.segment


def archive_options(function: Callable) -> Callable:
    """--db and --index-dir, shared by every command that opens an archive."""

    @click.option("--db", "db_url", envvar="MPLUG2_SEARCH_DB", help="SQLAlchemy URL (default: SQLite in the home).")
    @click.option(
        "--index-dir",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="MPLUG2_SEARCH_INDEX_DIR",
        help="Where vectors and features live (default: ~/.mplug2-search/index).",
    )
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        return function(*args, **kwargs)

    return wrapper


def model_option(function: Callable) -> Callable:
    return click.option(
        "--model",
        envvar="MPLUG2_SEARCH_MODEL",
        help="Model name or folder (default: the archive's model, else the bundled one).",
    )(function)


def _settings(db_url: str | None, index_dir: Path | None, model: str | None = None):
    from indexer.settings import load_settings

    return load_settings(db_url, index_dir, model)


def _fail(error: Exception) -> None:
    raise UserError(str(error)) from None


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@archive_options
@model_option
@click.option(
    "--feature-mode",
    type=click.Choice(["full", "pooled", "none"]),
    help="Re-rank features kept per clip: every visual token, a 2x2-pooled form, or none (recomputed). "
    "Default: what the archive recorded at its first run (full for a new archive).",
)
@click.option("--feature-budget", type=int, help="Disk budget for re-rank features, in MB (then pooled, then none).")
@click.option("--index-type", help="FAISS index: Flat (exact, default), HNSW32, IVF1024,PQ32, auto, ...")
@click.option("--segment", type=click.Choice(["fixed", "shots"]), default=_SEGMENT.mode, show_default=True)
@click.option("--window", type=float, default=_SEGMENT.window, show_default=True, help="Fixed window length (s).")
@click.option("--stride", type=float, help="Step between fixed windows (s); default: the window.")
@click.option("--min-clip", type=float, default=_SEGMENT.min_len, show_default=True)
@click.option("--max-clip", type=float, default=_SEGMENT.max_len, show_default=True)
@click.option("--workers", type=int, default=_INDEX.workers, show_default=True, help="Decode processes.")
@click.option(
    "--decoder",
    type=click.Choice(["auto", "torchcodec", "decord", "ffmpeg"]),
    default=_INDEX.decoder,
    show_default=True,
    help="Video decoder: auto (decord, then the ffmpeg CLI), torchcodec (NVDEC on a GPU, else CPU; then ffmpeg).",
)
@click.option("--batch-size", type=int, default=_INDEX.batch_size, show_default=True)
@click.option(
    "--decode-timeout", type=float, default=_INDEX.decode_timeout_s, show_default=True, help="Seconds per clip."
)
@click.option(
    "--decode-memory-mb", type=int, default=_INDEX.decode_memory_mb, show_default=True, help="Per decode process."
)
@click.option("--retry-failed", is_flag=True, help="Try files that failed before even if unchanged.")
@click.option(
    "--progress-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Keep this JSON file up to date with the progress (the UI reads it).",
)
@click.option(
    "--ray",
    "ray_address",
    metavar="ADDRESS",
    help="Index on a Ray cluster: auto, host:port or ray://host:port (pip install mplug2-search[ray]).",
)
@click.option("--ray-actors", type=int, help="Encoder actors on the cluster (default: one per GPU, else per 4 CPUs).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def index(
    paths: tuple[Path, ...],
    db_url: str | None,
    index_dir: Path | None,
    model: str | None,
    feature_mode: str | None,
    feature_budget: int | None,
    index_type: str | None,
    segment: str,
    window: float,
    stride: float | None,
    min_clip: float,
    max_clip: float,
    workers: int,
    decoder: str,
    batch_size: int,
    decode_timeout: float,
    decode_memory_mb: int,
    retry_failed: bool,
    progress_file: Path | None,
    ray_address: str | None,
    ray_actors: int | None,
    as_json: bool,
) -> None:
    """Index (or update) folders of videos and images: new and changed files are embedded, unchanged ones
    skipped, deleted ones retired. Safe to interrupt (Ctrl-C or a crash) and run again. With --ray, decoding
    and encoding run on a Ray cluster (docs/DISTRIBUTED.md); the archive is the same."""
    if ray_actors is not None and ray_address is None:
        raise click.UsageError("--ray-actors needs --ray ADDRESS")
    from indexer.archive import Archive, ArchiveError
    from indexer.media.segment import SegmentPolicy
    from indexer.pipeline import index_paths
    from indexer.settings import default_model_dir
    from mplug2.bundle import load_model_bundle

    settings = _settings(db_url, index_dir, model)
    archive = Archive(settings)
    name = settings.model or archive.model or str(default_model_dir())
    empty = _without_media(paths, archive)
    archive.close()
    if len(empty) == len(paths):  # one empty folder among others is left to the run: the rest still gets indexed
        message = f"no media found in {', '.join(map(str, empty))}: nothing to index (videos and images, by extension "
        message += "such as .mp4 .mov .mkv .jpg .png, or by content); check the folder"
        if progress_file:
            ProgressFile(progress_file).finish({"status": "error", "error": message})
        raise UserError(message)
    options = IndexOptions(
        feature_mode=feature_mode,
        feature_budget_mb=feature_budget,
        factory=index_type,
        segment=SegmentPolicy(segment, window, stride, min_clip, max_clip, _SEGMENT.scene_threshold),
        workers=workers,
        decoder=decoder,
        decode_timeout_s=decode_timeout,
        decode_memory_mb=decode_memory_mb,
        batch_size=batch_size,
        retry_failed=retry_failed,
        progress=not as_json,
    )
    try:
        bundle = load_model_bundle(name, with_fusion=False)
        report = ProgressFile(progress_file) if progress_file else None
        if ray_address is None:
            summary = index_paths(list(paths), settings, bundle, options, report)
        else:  # only here is Ray imported: a local run never pays for it
            try:
                from indexer.ray_index import RayOptions, index_on_ray
            except ImportError as error:
                raise ArchiveError(f"--ray needs Ray: pip install 'mplug2-search[ray]' ({error})") from None
            cluster = RayOptions(ray_address, actors=ray_actors)
            summary = index_on_ray(list(paths), settings, bundle, options, cluster, report)
    except (ArchiveError, FileNotFoundError, ValueError) as error:
        if progress_file:
            ProgressFile(progress_file).finish({"status": "error", "error": str(error)})
        _fail(error)
    if report is not None:
        report.finish({"status": summary.status, **summary.counts(), "timings": summary.timings})
    if as_json:
        click.echo(
            json.dumps(
                {
                    "run_id": summary.run_id,
                    "status": summary.status,
                    **summary.counts(),
                    "timings": summary.timings,
                    "decoders": summary.decoders,
                    "failures": summary.failures,
                    **({"nodes": {k: vars(v) for k, v in summary.nodes.items()}} if hasattr(summary, "nodes") else {}),
                }
            )
        )
    else:
        _print_summary(summary)
    _note_bundled_model(bundle.name)
    if summary.status == "interrupted":
        sys.exit(130)


def _without_media(paths: tuple[Path, ...], archive) -> list[Path]:
    """The folders given that hold no media file and none the archive knows (a run over those would do nothing;
    one over a folder whose files were all deleted still has to retire them)."""
    from indexer.pipeline import walk_media

    empty = []
    for path in paths:
        resolved = path.resolve()
        no_files = resolved.is_dir() and next(walk_media(resolved, set()), None) is None
        if no_files and not archive.files_under(str(resolved)):
            empty.append(path)
    return empty


class ProgressFile:
    """Progress as a JSON file, replaced atomically at most twice a second (and always at the end)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.last = 0.0
        self.state: dict = {}

    def __call__(self, progress: dict) -> None:
        self.state = progress
        now = time.monotonic()
        if now - self.last >= 0.5:
            self.last = now
            self._write(progress)

    def finish(self, final: dict) -> None:
        self._write({**self.state, **final})

    def _write(self, content: dict) -> None:
        from indexer.atomic import atomic_write_json

        atomic_write_json(self.path, content, default=str)


def _print_summary(summary) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    counts = summary.counts()
    console.print(
        f"[bold]{summary.status}[/bold]: {counts['indexed']} files indexed ({counts['clips']} clips), "
        f"{counts['unchanged']} unchanged, {counts['failed']} failed, {counts['removed']} removed"
    )
    stages = Table("stage", "seconds", title="time per stage")
    for stage in ("read", "probe", "segment", "decode", "decode_wait", "wait", "encode", "write", "total"):
        if stage in summary.timings:
            stages.add_row(stage, f"{summary.timings[stage]:.2f}")
    console.print(stages)
    nodes = getattr(summary, "nodes", None)  # a Ray run: where the work ran
    if nodes:
        table = Table("node", "decode tasks", "decode s", "batches", "clips encoded", "encode s", title="per node")
        for name, stats in sorted(nodes.items()):
            table.add_row(
                name,
                str(stats.decode_tasks),
                f"{stats.decode_s:.2f}",
                str(stats.batches),
                str(stats.clips_encoded),
                f"{stats.encode_s:.2f}",
            )
        console.print(table)
        console.print(f"{summary.actors} encoder actors on {summary.device}")
    if summary.failures:
        from indexer.cli.display import error_text, split_path

        failures = Table("file", "folder", "reason", "details", title="files that could not be indexed")
        failures.columns[0].no_wrap = failures.columns[1].no_wrap = True
        for path, code, message in summary.failures:
            name, folder = split_path(path, folder_width=28)
            failures.add_row(name, folder, code, error_text(path, message))
        console.print(failures)


@cli.command()
@click.argument("query", required=False)
@archive_options
@model_option
@click.option("-k", "--k", "k", type=int, default=10, show_default=True, help="Results to show.")
@click.option(
    "--rerank-k",
    type=click.IntRange(min=0),
    help="Candidates re-ranked by ITM (0: none; default: what the model's validation chose, see `models`).",
)
@click.option(
    "--image",
    "image_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Search by an example image instead of text.",
)
@click.option("--path-prefix", help="Only files under this folder.")
@click.option("--kind", "kinds", multiple=True, type=click.Choice(["video", "image"]))
@click.option("--min-duration", type=float, help="Only files at least this long (s).")
@click.option("--max-duration", type=float, help="Only files at most this long (s).")
@click.option("--after", type=click.DateTime(), help="Only files modified on or after this date.")
@click.option("--before", type=click.DateTime(), help="Only files modified before this date.")
@click.option("--one-per-file", is_flag=True, help="Keep only the best clip of each file.")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
def search(
    query: str | None,
    db_url: str | None,
    index_dir: Path | None,
    model: str | None,
    k: int,
    rerank_k: int | None,
    image_path: Path | None,
    path_prefix: str | None,
    kinds: tuple[str, ...],
    min_duration: float | None,
    max_duration: float | None,
    after: datetime | None,
    before: datetime | None,
    one_per_file: bool,
    as_json: bool,
) -> None:
    """Search the archive with a text query (or --image): ranked clips with their times and scores."""
    from indexer.archive import ArchiveError
    from indexer.db import SearchFilters
    from indexer.engine import SearchEngine

    if (query is None) == (image_path is None):
        raise click.UsageError("give a text query or --image FILE (one of them)")
    if query is not None and not query.strip():
        raise click.UsageError('the query is empty: say what to look for, e.g. search "a dog on a beach"')
    filters = SearchFilters(
        path_prefix=str(Path(path_prefix).expanduser().resolve()) if path_prefix else None,
        kinds=kinds or None,
        min_duration=min_duration,
        max_duration=max_duration,
        modified_after=after,
        modified_before=before,
    )
    try:
        engine = SearchEngine.open(_settings(db_url, index_dir, model), model)
        target = query if query is not None else _read_image(image_path)
        response = engine.search(target, k=k, rerank_k=rerank_k, filters=filters, one_per_file=one_per_file)
    except (ArchiveError, FileNotFoundError, ValueError) as error:
        _fail(error)
    if as_json:
        rows = [vars(result) for result in response.results]
        click.echo(json.dumps({"query": response.query, "results": rows, "timings": response.timings}, indent=1))
    else:
        _print_results(response, engine.roots())
    _note_bundled_model(engine.bundle.name)


def _note_bundled_model(name: str) -> None:
    """On stderr, so that --json output stays parseable."""
    from indexer.settings import bundled_model_note, is_bundled_model

    if is_bundled_model(name):
        sys.stdout.flush()  # after the results, not in the middle of their last line
        click.echo(f"note: {bundled_model_note()}", err=True)


def _read_image(path: Path):
    import numpy as np
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"{path}: not an image PIL can read ({error})") from None


def _print_results(response, roots: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not response.results:
        console.print("no results (is the archive indexed? try `mplug2-search status`, or loosen the filters)")
        return
    from rich import box
    from rich.text import Text

    from indexer.cli.display import split_path

    # The name whole (folded if it must be), its folder under it, dimmed and shortened from the left: the name is
    # what a person recognises, and an 80-column terminal has no room for both side by side.
    table = Table("#", "file", "clip", "ITC", "ITM", "score", title=f"results for {response.query!r}", box=box.SIMPLE)
    table.columns[1].overflow = "fold"
    width = max(16, console.width - 40)
    for result in response.results:
        name, folder = split_path(result.path, roots, folder_width=width)
        clip = "image" if result.kind == "image" else f"{result.start:.1f}-{result.end:.1f}s"
        itm = f"{result.itm_score:.2f}" if result.itm_score is not None else "-"
        cell = Text(name)
        cell.append("\n" + folder, style="dim")
        table.add_row(str(result.rank), cell, clip, f"{result.itc_score:.3f}", itm, f"{result.score:.3f}")
    console.print(table)
    console.print(
        f"{response.candidates} candidates, {response.reranked} re-ranked, "
        f"{response.timings.get('total', 0) * 1000:.0f} ms"
    )


@cli.command()
@archive_options
@click.option("--json", "as_json", is_flag=True)
def status(db_url: str | None, index_dir: Path | None, as_json: bool) -> None:
    """What is indexed: files by kind and status, searchable clips, the last run, and files that failed."""
    from dataclasses import asdict

    from indexer.archive import Archive

    archive = Archive(_settings(db_url, index_dir))
    stats = archive.stats()
    archive.close()
    catalog, store, run = stats.catalog, stats.features, stats.last_run
    if as_json:
        click.echo(
            json.dumps(
                {
                    "model": stats.model,
                    "roots": stats.roots,
                    "files": [asdict(count) for count in catalog.files],
                    "clips": {"ready": catalog.clips_ready, "pending": catalog.clips_pending},
                    "features": {**asdict(store), "bytes_per_clip": store.bytes_per_clip},
                    "last_run": vars(run) if run else None,
                    "failed": [{"path": m.path, "code": m.error_code, "error": m.error} for m in stats.failed],
                },
                default=str,
                indent=1,
            )
        )
        return
    _print_status(archive.index_dir, stats)


def _print_status(index_dir: Path, stats) -> None:
    """`status` for a person: one labelled line per fact, then the failed files as a table."""
    from rich.console import Console
    from rich.table import Table

    from indexer.cli.display import error_text, media_counts, megabytes, plural, run_line, split_path
    from indexer.settings import is_bundled_model

    catalog, store, run = stats.catalog, stats.features, stats.last_run
    model = stats.model
    shown_model = model + (" (the bundled demo model)" if is_bundled_model(model) else "") if model else None
    lines = [
        ("index", str(index_dir)),
        ("model", shown_model or "(nothing indexed yet)"),
        ("folders", ", ".join(stats.roots) or "(none)"),
        ("files", media_counts({f"{count.kind}/{count.status}": count.files for count in catalog.files})),
    ]
    clips = f"{catalog.clips_ready} searchable"
    if catalog.clips_pending:
        clips += f", {catalog.clips_pending} pending (an interrupted run: index again)"
    if store.clips:
        forms = ", ".join(f"{count} {form}" for form, count in store.by_form.items())
        clips += f"; re-rank features {megabytes(store.bytes)} ({megabytes(store.bytes_per_clip)} a clip: {forms})"
    lines.append(("clips", clips))
    if run is not None:
        lines.append(("last run", run_line(run)))
    for label, value in lines:
        click.echo(f"{label:9} {value}")
    if stats.failed:
        title = f"{plural(len(stats.failed), 'file')} could not be indexed"
        table = Table("file", "folder", "reason", "details", title=title)
        table.columns[0].no_wrap = table.columns[1].no_wrap = True
        for media in stats.failed:
            name, folder = split_path(media.path, stats.roots, folder_width=28)
            table.add_row(name, folder, media.error_code or "", error_text(media.path, media.error))
        Console().print(table)


@cli.command()
@archive_options
def verify(db_url: str | None, index_dir: Path | None) -> None:
    """Check that the database, the feature store and the vector index agree (exit 1 with a report if not)."""
    from indexer.archive import Archive

    report = Archive(_settings(db_url, index_dir)).verify()
    click.echo(
        f"searchable clips {report.ready_clips}, stored vectors {report.stored_clips}, "
        f"in the saved index {report.indexed_clips}"
    )
    if report.ok:
        click.echo("ok: the database, feature store and vector index agree")
        return
    for problem in report.problems:
        click.echo(f"problem: {problem}", err=True)
    click.echo(
        "fix: `mplug2-search index PATH` finishes interrupted work; `mplug2-search rebuild-index` rebuilds "
        "the vector index from the feature store",
        err=True,
    )
    sys.exit(1)


@cli.command("rebuild-index")
@archive_options
@click.option("--index-type", help="FAISS index to build: Flat, HNSW32, IVF1024,PQ32, auto (default: as before).")
def rebuild_index(db_url: str | None, index_dir: Path | None, index_type: str | None) -> None:
    """Rebuild the FAISS index from the feature store (the index is only a cache of the stored vectors)."""
    from indexer.archive import Archive, ArchiveError

    try:
        archive = Archive(_settings(db_url, index_dir))
        index = archive.rebuild_index(index_type)
    except ArchiveError as error:
        _fail(error)
    click.echo(f"rebuilt {index.effective_factory} index with {index.ntotal} vectors at {archive.vectors_path}")
