"""`mplug2-search ui` (the Streamlit app over an archive) and `mplug2-search demo` (build, index and open a demo)."""

from __future__ import annotations

import errno
import os
import socket
import sys
from pathlib import Path

import click

from indexer.cli import cli
from indexer.cli.errors import UserError
from indexer.cli.options import archive_options, model_option, runtime_options

APP = Path(__file__).resolve().parents[2] / "search_ui" / "app.py"


def launch_ui(
    db_url: str,
    index_dir: Path,
    model: str | None,
    host: str,
    port: int,
    reports_dir: Path | None,
    media_roots: tuple[Path, ...] = (),
) -> None:
    """Replace this process by the Streamlit server (Ctrl-C stops it); the app finds its archive, the address it
    is served on and the folders it may index in the environment."""
    env = dict(os.environ, MPLUG2_SEARCH_DB=db_url, MPLUG2_SEARCH_INDEX_DIR=str(index_dir), MPLUG2_SEARCH_HOST=host)
    env["MPLUG2_SEARCH_MEDIA_ROOTS"] = os.pathsep.join(str(root.resolve()) for root in media_roots)
    if model:
        env["MPLUG2_SEARCH_MODEL"] = model
    if reports_dir:
        env["MPLUG2_SEARCH_REPORTS"] = str(reports_dir)
    args = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        "--client.toolbarMode",
        "viewer",
        "--client.showErrorDetails",
        "none",  # pages show their own messages; anything unforeseen stays a generic message, traceback in the log
    ]
    _check_port(host, port)
    click.echo(f"search UI on http://{host}:{port} (Ctrl-C to stop)")
    sys.stdout.flush()
    os.execve(sys.executable, args, env)


def _check_port(host: str, port: int) -> None:
    """Refuse a port another server holds, before Streamlit starts (its own message is a log line and exit 1)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is no conflict
        try:
            probe.bind((host, port))
        except PermissionError:
            raise UserError(f"port {port} needs administrator rights: pass --port 8501 or another above 1023") from None
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise UserError(f"cannot serve on {host}:{port} ({error.strerror}): check --host") from None
            raise UserError(
                f"port {port} on {host} is in use (another mplug2-search ui?): pass --port {_free_port(host)}"
            ) from None


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def ui_options(function):
    function = click.option("--port", type=int, default=8501, show_default=True)(function)
    function = click.option(
        "--host", default="127.0.0.1", show_default=True, help="Address to serve on (0.0.0.0: every interface)."
    )(function)
    return function


@cli.command()
@archive_options
@model_option
@runtime_options
@ui_options
@click.option(
    "--reports-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Evaluation reports to show (default: reports/ in the home folder).",
)
@click.option(
    "--media-root",
    "media_roots",
    multiple=True,
    envvar="MPLUG2_SEARCH_MEDIA_ROOTS",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A folder the app may index from its Library page (repeatable; the environment variable takes several, "
    "separated by ':'). Served beyond 127.0.0.1, the app indexes nothing without one.",
)
def ui(
    db_url: str | None,
    index_dir: Path | None,
    model: str | None,
    runtime: str | None,
    precision: str | None,
    host: str,
    port: int,
    reports_dir: Path | None,
    media_roots: tuple[Path, ...],
) -> None:
    """Open the search app in the browser: search, library (index folders, failures, timings), evaluation."""
    from indexer.settings import load_settings

    if runtime:  # the app reads its settings from the environment (indexer.settings.load_settings)
        os.environ["MPLUG2_SEARCH_RUNTIME"] = runtime
    if precision:
        os.environ["MPLUG2_SEARCH_PRECISION"] = precision
    settings = load_settings(db_url, index_dir, model)
    launch_ui(settings.db_url, settings.index_dir, settings.model, host, port, reports_dir, media_roots)


@cli.command()
@click.option(
    "--dir",
    "demo_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo"),
    show_default=True,
    help="Where the demo media, catalog and index go.",
)
@model_option
@ui_options
@click.option("--no-ui", is_flag=True, help="Build, index and search, then stop instead of opening the UI.")
def demo(demo_dir: Path, model: str | None, host: str, port: int, no_ui: bool) -> None:
    """Build a demo archive (synthetic videos, images and a few broken files), index it with the bundled model,
    check that captions find their files, write an evaluation report, and open the UI."""
    from indexer.demo import build_demo_archive
    from indexer.indexing.pipeline import IndexOptions, index_paths
    from indexer.settings import Settings, default_model_dir, sqlite_url
    from mplug2.bundle import load_model_bundle

    demo_dir = demo_dir.resolve()
    media = demo_dir / "media"
    click.echo(f"1/4 demo media in {media}")
    summary = build_demo_archive(media)
    # The layout of a home folder (catalog.sqlite, index/, reports/): MPLUG2_SEARCH_HOME=demo_dir makes every
    # command of the README work on the demo as written.
    settings = Settings(
        home=demo_dir,
        db_url=sqlite_url(demo_dir / "catalog.sqlite"),
        index_dir=demo_dir / "index",
        model=model,
    )
    name = model or str(default_model_dir())
    click.echo(f"2/4 indexing with {name}")
    bundle = load_model_bundle(name)
    result = index_paths([media], settings, bundle, IndexOptions())
    counts = result.counts()
    click.echo(
        f"    {counts['indexed']} files indexed ({counts['clips']} clips), {counts['unchanged']} unchanged, "
        f"{counts['failed']} failed" + (" (the broken ones, on purpose)" if counts["failed"] else "")
    )
    click.echo("3/4 searching: does each caption find the file it describes?")
    ranks = _demo_searches(settings, bundle, summary["queries"], media / "synthetic")
    first = sum(rank == 1 for rank in ranks)
    top = sum(rank is not None for rank in ranks)
    click.echo(
        f"    {first} of {len(ranks)} found their file first, {top} of {len(ranks)} within the first {DEMO_K}."
        + (f" {DEMO_LIMITS}" if first < len(ranks) else "")
    )
    click.echo(f"4/4 evaluation on the demo's {summary['counts'].get('test_videos', 'test')} videos")
    report_dir = _demo_evaluation(bundle, media / "synthetic", demo_dir / "reports" / "demo-videos")
    _print_next_steps(demo_dir)
    if top == 0:
        raise UserError("no caption found its file among the first results: the model or the index is broken")
    if not no_ui:
        click.echo(f"    report {report_dir} is on the app's Evaluation page")
        launch_ui(settings.db_url, settings.index_dir, model, host, port, demo_dir / "reports")


DEMO_COMPOSED_QUERIES = 100  # graded queries on the demo videos (a few seconds of ITM on 2 cores)
DEMO_K = 10
DEMO_LIMITS = (
    "The bundled model tells colours, backgrounds and most motion directions apart but often confuses shapes (its "
    "measured limits: data/models/mplug2-synth/README.md); a real model is one command away, see the README."
)


def _demo_searches(settings, bundle, queries: list[dict], media: Path) -> list[int | None]:
    """Each example caption searched as a user would; prints where its file came; returns the ranks (None: missed)."""
    from indexer.search.engine import SearchEngine
    from indexer.store.db.records import SearchFilters

    engine = SearchEngine(settings, bundle)
    ranks: list[int | None] = []
    try:
        for example in queries:
            # A picture's caption describes a still shape that videos show too: searched among pictures, as a user
            # who wants a picture would.
            kind = example.get("kind", "video")
            filters = SearchFilters(kinds=(kind,)) if kind == "image" else None
            response = engine.search(example["query"], k=DEMO_K, filters=filters)
            found = [Path(r.path).relative_to(media).as_posix() for r in response.results]
            rank = found.index(example["expect"]) + 1 if example["expect"] in found else None
            ranks.append(rank)
            verdict = {None: f"missed (not in the first {DEMO_K})", 1: "found first"}.get(rank, f"found at #{rank}")
            scope = " among images" if filters else ""
            shown = "" if rank == 1 else f"; first: {', '.join(found[:3]) or 'no results'}"
            click.echo(f"  {verdict:28} {example['query']!r}{scope} → {example['expect']}{shown}")
    finally:
        engine.close()
    return ranks


def _demo_evaluation(bundle, media: Path, out_dir: Path) -> Path:
    """Zero-shot retrieval on the demo videos' own captions, saved where the app's Evaluation page looks."""
    from indexer.evaluation.datasets import load_benchmark
    from indexer.evaluation.report import build_report, save_report
    from indexer.evaluation.runner import EvalSettings, evaluate
    from indexer.synthetic.compose import composed_queries

    annotations = media / "annotations" / "test_videos.jsonl"
    data = load_benchmark("jsonl", annotations, media)
    settings = EvalSettings(progress=False)
    composed = composed_queries(data.item_attributes(), data.kind, DEMO_COMPOSED_QUERIES)
    result = evaluate(bundle, data, settings, out_dir.parent / ".cache" / "demo-videos", composed)
    report = build_report(result, bundle.name, annotations, media, vars(settings))
    save_report(report, result, out_dir)
    # Ranked as search ranks with this model (the scorer and depth its folder records), not by the paper's recipe.
    figures = report["metrics"].get("model_choice", report["metrics"]["itc"])
    depth = report["counts"].get("model_choice_rerank_k", 0)
    ranking = f"top {depth} re-ranked" if depth else "no re-ranking"
    click.echo(
        f"    text→video R@1 {figures['t2v_R@1']:.2f}, R@5 {figures['t2v_R@5']:.2f}, R@10 {figures['t2v_R@10']:.2f} "
        f"(as search ranks with this model: {ranking}); report in {out_dir}"
    )
    full = report["graded"]["queries_with_a_full_match"]
    graded = report["graded"]["by_scorer"][report["headline_scorer"]]
    click.echo(
        f"    {len(composed)} queries composed of attributes ({full} matched in full by a video, "
        f"{len(composed) - full} by none): the first result holds {graded['share@1']:.2f} of the most attributes "
        f"any video holds, the top 5 {graded['share@5']:.2f}; a full match comes first "
        f"{graded.get('full_match_first', 0):.2f} of the time"
    )
    return out_dir


def _print_next_steps(demo_dir: Path) -> None:
    click.echo("next, in another terminal (source .venv/bin/activate first):")
    click.echo(f"  export MPLUG2_SEARCH_HOME={demo_dir}    # the README's commands then use the demo archive:")
    click.echo('  mplug2-search search "a red circle moves to the left"')
    click.echo("  your own folder, in a new archive under ~/.mplug2-search: unset MPLUG2_SEARCH_HOME, then")
    click.echo("  mplug2-search index ~/Videos   (for real photos and videos, fetch a real model first: README)")
