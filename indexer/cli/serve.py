"""`serve`: the HTTP search API over an archive (`indexer.search.api`)."""

from __future__ import annotations

from pathlib import Path

import click

from indexer.cli import cli
from indexer.cli.options import _fail, _settings, archive_options, model_option

DEFAULT_PORT = 8600


@cli.command()
@archive_options
@model_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (beyond loopback: a token).")
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True)
@click.option(
    "--token-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A file whose first line is the bearer token (else $MPLUG2_SEARCH_TOKEN; neither: no token, loopback only).",
)
@click.option("--cors-origin", "cors_origins", multiple=True, help="An origin allowed to call the API from a page.")
@click.option("--url-ttl", type=click.FloatRange(min=1), help="Seconds a signed media or thumbnail URL works.")
@click.option("--batch-window-ms", type=click.FloatRange(min=0), help="How long to collect concurrent searches.")
def serve(
    db_url: str | None,
    index_dir: Path | None,
    model: str | None,
    host: str,
    port: int,
    token_file: Path | None,
    cors_origins: tuple[str, ...],
    url_ttl: float | None,
    batch_window_ms: float | None,
) -> None:
    """Serve the archive's search over HTTP: JSON endpoints under /v1, the OpenAPI document at /openapi.json and
    /docs, Prometheus metrics at /metrics."""
    from indexer.search.api import ApiConfig
    from indexer.search.api.server import check_bind, read_token
    from indexer.search.api.server import serve as run
    from indexer.search.engine import SearchEngine
    from indexer.store.archive import ArchiveError

    try:
        token = read_token(token_file)
        check_bind(host, token)
    except (OSError, ValueError) as error:
        _fail(error)
    options = {"token": token, "cors_origins": cors_origins}
    if url_ttl is not None:
        options["url_ttl_s"] = url_ttl
    if batch_window_ms is not None:
        options["batch_window_s"] = batch_window_ms / 1000
    settings = _settings(db_url, index_dir, model)
    try:
        engine = SearchEngine.open(settings, model)
    except (ArchiveError, FileNotFoundError, ValueError) as error:
        _fail(error)
    click.echo(f"serving {settings.index_dir} on http://{host}:{port} (token {'required' if token else 'off'})")
    try:
        run(engine, ApiConfig(**options), host, port)
    finally:
        engine.close()
