"""How the CLI shows paths, runs and archives to a person: file names whole, folders shortened from the left,
counts and timings as words and numbers (never Python dicts)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path


def shorten_left(text: str, width: int) -> str:
    """`text` in at most `width` characters, its start replaced by `…` (a folder's end says the most)."""
    return text if len(text) <= width else "…" + text[len(text) - max(width - 1, 1) :]


def split_path(path: str, roots: Iterable[str] = (), folder_width: int = 40) -> tuple[str, str]:
    """(file name, its folder): the folder relative to the indexed root that holds it (named by the root's last
    part) and shortened from the left to `folder_width`."""
    full = Path(path)
    folder = str(full.parent)
    for root in sorted(roots, key=len, reverse=True):
        if folder == root or folder.startswith(root.rstrip(os.sep) + os.sep):
            folder = os.path.join(Path(root).name, os.path.relpath(folder, root)).removesuffix(os.sep + ".")
            break
    return full.name, shorten_left(folder, folder_width)


def error_text(path: str, message: str | None) -> str:
    """An error message without the path it starts with (the table already shows the file)."""
    text = (message or "").strip()
    for prefix in (f"{path}: ", f"{Path(path).name}: "):
        text = text.removeprefix(prefix)
    return text.splitlines()[0] if text else ""


def plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def media_counts(by_kind_status: dict[str, int]) -> str:
    """{"video/indexed": 13, "image/failed": 1} → "13 videos indexed, 1 image failed"."""
    parts = []
    for key, count in sorted(by_kind_status.items(), key=lambda item: (item[0].split("/")[1] != "indexed", item[0])):
        kind, _, status = key.partition("/")
        parts.append(f"{plural(count, kind if kind != 'unknown' else 'file')} {status}")
    return ", ".join(parts) or "none"


def run_line(run) -> str:
    """One index run: when, outcome, counts, total time and the slow stages."""
    when = run.started_at.strftime("%Y-%m-%d %H:%M") if isinstance(run.started_at, datetime) else str(run.started_at)
    counts = run.counts or {}
    shown = [f"{counts[key]} {key}" for key in ("indexed", "unchanged", "failed", "removed") if key in counts]
    timings = run.timings or {}
    stages = [
        f"{stage} {timings[stage]:.1f}"
        for stage in ("probe", "decode", "decode_wait", "encode", "write")
        if timings.get(stage, 0) >= 0.05
    ]
    total = f"; {timings['total']:.1f} s" if "total" in timings else ""
    detail = f" ({', '.join(stages)})" if stages else ""
    return f"#{run.id} {run.status} {when}: {', '.join(shown) or 'no files'}{total}{detail}"


def megabytes(size: float) -> str:
    return f"{size / 2**20:.1f} MB" if size >= 2**20 else f"{size / 1024:.0f} KB"
