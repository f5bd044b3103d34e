"""What the commands that open an archive share: the --db/--index-dir and --model options, the settings they
name, a failure turned into a one-line user error, and the note that the bundled demo model answered."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path

import click

from indexer.cli.errors import UserError


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


def _note_bundled_model(name: str) -> None:
    """On stderr, so that --json output stays parseable."""
    from indexer.settings import bundled_model_note, is_bundled_model

    if is_bundled_model(name):
        sys.stdout.flush()  # after the results, not in the middle of their last line
        click.echo(f"note: {bundled_model_note()}", err=True)
