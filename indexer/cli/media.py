"""`mplug2-search probe`: what the media layer makes of some files (kind, size, codec, duration, or the error)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from indexer.cli import cli


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file instead of a table.")
def probe(paths: tuple[Path, ...], as_json: bool) -> None:
    """Probe media files: video, image or neither (by content), with duration, fps, size, codec, rotation."""
    from rich.console import Console
    from rich.table import Table

    from indexer.media.errors import MediaError
    from indexer.media.probe import probe as probe_file

    rows = []
    for path in paths:
        try:
            info = probe_file(path)
            rows.append({**asdict(info), "kind": info.kind.value, "creation_time": _iso(info.creation_time)})
        except MediaError as error:
            rows.append({"path": str(path), "error": error.code, "message": str(error)})
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False))
        return
    table = Table("file", "kind", "size", "codec", "duration", "fps", "frames", "rotation")
    for row in rows:
        if "error" in row:
            table.add_row(row["path"], f"[red]{row['error']}[/red]", row["message"], "", "", "", "", "")
        else:
            table.add_row(
                row["path"],
                row["kind"],
                f"{row['width']}x{row['height']}",
                row["codec"],
                f"{row['duration']:.2f}s",
                f"{row['fps']:.2f}",
                str(row["frame_count"]),
                str(row["rotation"]),
            )
    Console().print(table)


def _iso(value: object) -> str | None:
    return value.isoformat() if value is not None else None
