"""Archive commands: `search`, `service`, `status`, `verify`, `rebuild-index`, `compact` (`index` is in
`indexer.cli.index`)."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

import click

from indexer.cli import cli
from indexer.cli.options import _fail, _note_bundled_model, _settings, archive_options, model_option, runtime_options
from indexer.search.service import KEEP_WARM_MINUTES


@cli.command()
@click.argument("query", required=False)
@archive_options
@model_option
@runtime_options
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
@click.option(
    "--keep-warm",
    type=click.FloatRange(min=0),
    default=KEEP_WARM_MINUTES,
    show_default=True,
    envvar="MPLUG2_SEARCH_KEEP_WARM",
    help="Minutes the archive's search service keeps the model loaded after a search, so that the next one answers "
    "in a fraction of a second (the first search starts it; 0: search in this process only).",
)
def search(
    query: str | None,
    db_url: str | None,
    index_dir: Path | None,
    model: str | None,
    runtime: str | None,
    precision: str | None,
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
    keep_warm: float,
) -> None:
    """Search the archive with a text query (or --image): ranked clips with their times and scores."""
    if (query is None) == (image_path is None):
        raise click.UsageError("give a text query or --image FILE (one of them)")
    if query is not None and not query.strip():
        raise click.UsageError('the query is empty: say what to look for, e.g. search "a dog on a beach"')
    filters = {
        "path_prefix": str(Path(path_prefix).expanduser().resolve()) if path_prefix else None,
        "kinds": kinds or None,
        "min_duration": min_duration,
        "max_duration": max_duration,
        "modified_after": after,
        "modified_before": before,
    }
    settings = _settings(db_url, index_dir, model, runtime, precision)
    request = {
        "query": query,
        "image": str(image_path.resolve()) if image_path else None,
        "k": k,
        "rerank_k": rerank_k,
        "filters": filters,
        "one_per_file": one_per_file,
    }
    reply = _search_through_service(settings, model, request, keep_warm) if keep_warm > 0 else None
    if reply is None:
        reply = _search_here(settings, model, request)
    response, roots, model_name = reply
    if as_json:
        rows = [vars(result) for result in response.results]
        click.echo(json.dumps({"query": response.query, "results": rows, "timings": response.timings}, indent=1))
    else:
        _print_results(response, roots)
    _note_bundled_model(model_name)


def _search_through_service(settings, model: str | None, request: dict, keep_warm: float):
    """(response, roots, model name) from the archive's resident service (started if none runs), or None when no
    service could answer. Imports neither torch nor FAISS: that is the point."""
    from indexer.search import service
    from indexer.search.results import SearchResponse

    reply = service.search(settings, model, request, idle_minutes=keep_warm)
    if reply is None:
        return None
    if "user_error" in reply:
        _fail(ValueError(reply["user_error"]))
    return SearchResponse.from_dict(reply["response"]), reply["roots"], reply["model"]


def _search_here(settings, model: str | None, request: dict):
    """(response, roots, model name), searched in this process."""
    from indexer.search.engine import SearchEngine
    from indexer.search.service import run_search
    from indexer.store.archive import ArchiveError

    try:
        engine = SearchEngine.open(settings, model)
        return run_search(engine, request), engine.roots(), engine.bundle.name
    except (ArchiveError, FileNotFoundError, ValueError) as error:
        _fail(error)


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
@model_option
@runtime_options
@click.option(
    "--idle-minutes",
    type=click.FloatRange(min=0, min_open=True),
    default=KEEP_WARM_MINUTES,
    show_default=True,
    help="Exit after this long without a search.",
)
@click.option("--stop", "stop_it", is_flag=True, help="Stop the archive's running service.")
@click.option("--status", "show_status", is_flag=True, help="Say whether a service runs for the archive.")
def service(
    db_url: str | None,
    index_dir: Path | None,
    model: str | None,
    runtime: str | None,
    precision: str | None,
    idle_minutes: float,
    stop_it: bool,
    show_status: bool,
) -> None:
    """The archive's search service, in the foreground: it keeps the model and index loaded and answers `search`
    from the shell in a fraction of a second. `search` starts one in the background by itself (--keep-warm)."""
    from indexer.search import service as resident

    settings = _settings(db_url, index_dir, model, runtime, precision)
    if stop_it or show_status:
        pid = resident.stop(settings, model) if stop_it else (resident.ping(settings, model) or {}).get("pid")
        verb = "stopped" if stop_it else "runs"
        click.echo(f"the search service {verb} (pid {pid})" if pid else "no search service runs for this archive")
        return
    from indexer.store.archive import ArchiveError

    try:
        why = resident.serve(settings, model, idle_minutes)
    except (ArchiveError, FileNotFoundError, ValueError) as error:
        _fail(error)
    click.echo(f"search service stopped: {why}")


@cli.command()
@archive_options
@click.option("--json", "as_json", is_flag=True)
def status(db_url: str | None, index_dir: Path | None, as_json: bool) -> None:
    """What is indexed: files by kind and status, searchable clips, the last run, and files that failed."""
    from dataclasses import asdict

    from indexer.store.archive import Archive

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
                    "clips": {
                        "ready": catalog.clips_ready,
                        "pending": catalog.clips_pending,
                        "offline": catalog.clips_offline,
                    },
                    "offline": [{"folder": folder, "files": files} for folder, files in stats.offline],
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
    if stats.offline:
        files = sum(count for _, count in stats.offline)
        where = ", ".join(f"{folder} ({count})" for folder, count in stats.offline[:3])
        more = f" and {len(stats.offline) - 3} more folders" if len(stats.offline) > 3 else ""
        lines.append(
            (
                "offline",
                f"{plural(files, 'file')} ({catalog.clips_offline} clips) whose folder is gone or empty: {where}"
                f"{more}; kept, not searchable, back when the folder is (`index --prune-missing` forgets them)",
            )
        )
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
    from indexer.store.archive import Archive

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
    from indexer.store.archive import Archive, ArchiveError

    try:
        archive = Archive(_settings(db_url, index_dir))
        index = archive.rebuild_index(index_type)
    except ArchiveError as error:
        _fail(error)
    click.echo(f"rebuilt {index.effective_factory} index with {index.ntotal} vectors at {archive.vectors_path}")


@cli.command()
@archive_options
def compact(db_url: str | None, index_dir: Path | None) -> None:
    """Give back the disk space of retired clips (deleted or re-indexed files): the feature store and the vector
    index rewritten without them. Safe to kill at any moment; waits for no index run (refuses while one runs).
    Index runs also compact by themselves once retired clips hold 30% of the store."""
    from indexer.store.archive import Archive, ArchiveError
    from indexer.store.errors import stops_when_full

    settings = _settings(db_url, index_dir)
    archive = Archive(settings)
    try:
        with stops_when_full(settings):
            report = archive.compact()
    except ArchiveError as error:
        _fail(error)
    finally:
        archive.close()
    if report is None:
        click.echo("nothing to compact: every stored clip is kept")
        return
    mb = 1 << 20
    click.echo(
        f"compacted: {report.clips_dropped} retired clips dropped, {report.bytes_before / mb:.1f} MB -> "
        f"{report.bytes_after / mb:.1f} MB ({report.bytes_per_clip / 1024:.1f} KB a clip)"
    )
