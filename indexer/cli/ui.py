"""`mplug2-search ui` (the Streamlit app over an archive) and `mplug2-search demo` (build, index and open a demo)."""

from __future__ import annotations

import errno
import os
import socket
import sys
from pathlib import Path

import click

from indexer.cli import cli
from indexer.cli.archive import archive_options, model_option
from indexer.cli.errors import UserError

APP = Path(__file__).resolve().parents[2] / "search_ui" / "app.py"


def launch_ui(db_url: str, index_dir: Path, model: str | None, host: str, port: int, reports_dir: Path | None) -> None:
    """Replace this process by the Streamlit server (Ctrl-C stops it); the app finds its archive in the
    environment."""
    env = dict(os.environ, MPLUG2_SEARCH_DB=db_url, MPLUG2_SEARCH_INDEX_DIR=str(index_dir))
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
@ui_options
@click.option(
    "--reports-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Evaluation reports to show (default: reports/ in the home folder).",
)
def ui(
    db_url: str | None, index_dir: Path | None, model: str | None, host: str, port: int, reports_dir: Path | None
) -> None:
    """Open the search app in the browser: search, library (index folders, failures, timings), evaluation."""
    from indexer.settings import load_settings

    settings = load_settings(db_url, index_dir, model)
    launch_ui(settings.db_url, settings.index_dir, settings.model, host, port, reports_dir)


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
    run a few searches, and open the UI."""
    from indexer.db.records import SearchFilters
    from indexer.demo import build_demo_archive
    from indexer.engine import SearchEngine
    from indexer.pipeline import IndexOptions, index_paths
    from indexer.settings import Settings, default_model_dir, sqlite_url
    from mplug2.bundle import load_model_bundle

    demo_dir = demo_dir.resolve()
    media = demo_dir / "media"
    click.echo(f"1/3 demo media in {media}")
    summary = build_demo_archive(media)
    settings = Settings(
        home=demo_dir,
        db_url=sqlite_url(demo_dir / "catalog.sqlite"),
        index_dir=demo_dir / "index",
        model=model,
    )
    name = model or str(default_model_dir())
    click.echo(f"2/3 indexing with {name}")
    bundle = load_model_bundle(name)
    result = index_paths([media], settings, bundle, IndexOptions())
    counts = result.counts()
    click.echo(
        f"    {counts['indexed']} files indexed ({counts['clips']} clips), {counts['unchanged']} unchanged, "
        f"{counts['failed']} failed" + (" (the broken ones, on purpose)" if counts["failed"] else "")
    )
    click.echo("3/3 searching")
    engine = SearchEngine(settings, bundle)
    try:
        for example in summary["queries"]:
            # A picture is searched among pictures, as a user would: video scores add the cosine to the ITM logit
            # (the official recipe), so across kinds they are not on one scale.
            kind = example.get("kind", "video")
            filters = SearchFilters(kinds=(kind,)) if kind == "image" else None
            response = engine.search(example["query"], k=3, filters=filters)
            found = [Path(r.path).relative_to(media / "synthetic").as_posix() for r in response.results]
            mark = "ok " if found and found[0] == example["expect"] else "   "
            listed = ", ".join(found) or "no results"
            scope = " among images" if filters else ""
            click.echo(f"  {mark}{example['query']!r}{scope}: {listed} (expected {example['expect']})")
    finally:
        engine.close()
    if not no_ui:
        launch_ui(settings.db_url, settings.index_dir, model, host, port, demo_dir / "reports")
