"""`mplug2-search index`: index (or update) folders of media, locally or on a Ray cluster, and report the run."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path

import click

from indexer.cli import cli
from indexer.cli.errors import UserError
from indexer.cli.options import _fail, _note_bundled_model, _settings, archive_options, model_option, runtime_options
from indexer.indexing.options import IndexOptions

_INDEX = IndexOptions()  # the `index` command's defaults are the library's
_SEGMENT = _INDEX.segment


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@archive_options
@model_option
@runtime_options
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
    "--prune-missing",
    is_flag=True,
    help="Forget the files of folders that are gone (by default they stay offline: kept, not searchable, back "
    "with nothing re-encoded when the folder is).",
)
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
    runtime: str | None,
    precision: str | None,
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
    prune_missing: bool,
    progress_file: Path | None,
    ray_address: str | None,
    ray_actors: int | None,
    as_json: bool,
) -> None:
    """Index (or update) folders of videos and images: new and changed files are embedded, unchanged ones
    skipped, moved or copied ones reuse their clips, deleted ones retired; files of a folder that is gone (an
    unmounted disk) stay offline until it is back. Safe to interrupt (Ctrl-C or a crash) and run again. With --ray,
    decoding and encoding run on a Ray cluster (docs/DISTRIBUTED.md); the archive is the same."""
    if ray_actors is not None and ray_address is None:
        raise click.UsageError("--ray-actors needs --ray ADDRESS")
    from indexer.indexing.pipeline import index_paths
    from indexer.media.segment import SegmentPolicy
    from indexer.settings import default_model_dir
    from indexer.store.archive import Archive, ArchiveError
    from mplug2.bundle import load_model_bundle

    settings = _settings(db_url, index_dir, model, runtime, precision)
    if ray_address is not None and settings.runtime.for_archive(None)[0] not in ("auto", "torch"):
        raise click.UsageError("--ray encodes with torch only: leave out --runtime/--precision, or index locally")
    archive = Archive(settings)
    name = settings.model or archive.model or str(default_model_dir())
    unknown = [path for path in paths if not path.exists() and not archive.files_inside(str(path.resolve()))]
    empty = _without_media(paths, archive)
    archive.close()
    if unknown:
        raise click.BadParameter(f"{unknown[0]}: no such folder or file (and the archive holds nothing from it)")
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
        prune_missing=prune_missing,
        progress=not as_json,
        runtime=settings.runtime,
    )
    try:
        bundle = load_model_bundle(name, with_fusion=False)
        report = ProgressFile(progress_file) if progress_file else None
        if ray_address is None:
            summary = index_paths(list(paths), settings, bundle, options, report)
        else:  # only here is Ray imported: a local run never pays for it
            try:
                from indexer.indexing.ray_index import RayOptions, index_on_ray
            except ImportError as error:
                raise ArchiveError(f"--ray needs Ray: pip install 'mplug2-search[ray]' ({error})") from None
            cluster = RayOptions(ray_address, actors=ray_actors)
            summary = index_on_ray(list(paths), settings, bundle, options, cluster, report)
    except (ArchiveError, FileNotFoundError, ValueError) as error:
        if progress_file:
            with contextlib.suppress(OSError):
                ProgressFile(progress_file).finish({"status": "error", "error": str(error)})
        _fail(error)
    if report is not None:  # a full disk may refuse this too: the run's own line has said it all
        with contextlib.suppress(OSError):
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
    from indexer.indexing.pipeline import walk_media

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
    if counts["reused"] or counts["offline"]:
        console.print(
            f"{counts['reused']} files found again (back, moved or copied: {counts['clips_reused']} clips reused, none "
            f"encoded); {counts['offline']} offline (folder gone or empty: kept, not searchable; --prune-missing "
            "forgets them)"
        )
    if counts["compacted_bytes"]:
        console.print(f"compacted the feature store: {counts['compacted_bytes'] / (1 << 20):.1f} MB given back")
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
