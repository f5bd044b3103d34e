"""What the commands that open an archive share: the --db/--index-dir and --model options, the settings they
name, a failure turned into a one-line user error, and the note that the bundled demo model answered."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path

import click

from indexer.cli.errors import UserError
from indexer.settings import DB_RETRY_S


def _remember_db_retry(ctx: click.Context, _param: click.Parameter, value: float | None) -> None:
    if value is not None:
        ctx.meta["db_retry_s"] = value


def archive_options(function: Callable) -> Callable:
    """--db, --index-dir and --db-retry, shared by every command that opens an archive."""

    @click.option("--db", "db_url", envvar="MPLUG2_SEARCH_DB", help="SQLAlchemy URL (default: SQLite in the home).")
    @click.option(
        "--db-retry",
        type=click.FloatRange(min=0),
        envvar="MPLUG2_SEARCH_DB_RETRY",
        expose_value=False,
        callback=_remember_db_retry,
        help=f"Seconds to ride out a database that went away (a server restart) before giving up [default: "
        f"{DB_RETRY_S:g}].",
    )
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


def runtime_options(function: Callable) -> Callable:
    """--runtime and --precision: which runtime serves the model (default: what the archive was built with)."""
    from indexer.settings import PRECISION_CHOICES, RUNTIME_CHOICES

    function = click.option(
        "--precision",
        type=click.Choice(PRECISION_CHOICES),
        envvar="MPLUG2_SEARCH_PRECISION",
        help="fp32, or int8 (OpenVINO, calibrated on the demo's clips). Default: the archive's (fp32 for a new one).",
    )(function)
    return click.option(
        "--runtime",
        type=click.Choice(RUNTIME_CHOICES),
        envvar="MPLUG2_SEARCH_RUNTIME",
        help="What runs the model: torch, openvino (CPU), or auto: the archive's, else the fastest measured for "
        "the precision (torch for fp32, openvino for int8 on a CPU).",
    )(function)


def _settings(
    db_url: str | None,
    index_dir: Path | None,
    model: str | None = None,
    runtime: str | None = None,
    precision: str | None = None,
):
    from indexer.settings import RuntimeOptions, load_settings

    context = click.get_current_context(silent=True)
    retry = context.meta.get("db_retry_s") if context is not None else None
    return load_settings(db_url, index_dir, model, retry, RuntimeOptions(runtime or "auto", precision))


def _fail(error: Exception) -> None:
    raise UserError(str(error)) from None


def _note_bundled_model(name: str) -> None:
    """On stderr, so that --json output stays parseable."""
    from indexer.settings import bundled_model_note, is_bundled_model

    if is_bundled_model(name):
        sys.stdout.flush()  # after the results, not in the middle of their last line
        click.echo(f"note: {bundled_model_note()}", err=True)
