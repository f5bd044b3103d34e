"""Readers for the benchmarks' annotation files, as the community distributes them. Each returns a
`RetrievalBenchmark`; media paths resolve under the media folder (with the extension found on disk when the
annotations omit it)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from indexer.evaluation.benchmark import RetrievalBenchmark, RetrievalItem

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg")


def resolve_media(media_dir: Path, name: str, extensions: tuple[str, ...] = VIDEO_EXTENSIONS) -> Path:
    """`media_dir / name`, or with the first extension that exists when `name` has none on disk."""
    path = media_dir / name
    if path.exists() or path.suffix.lower() in (*extensions, ".jpg", ".jpeg", ".png"):
        return path
    for extension in extensions:
        if (candidate := path.with_name(path.name + extension)).exists():
            return candidate
    return path


def read_rows(path: Path) -> list[dict]:
    """A json list, or jsonl."""
    text = path.read_text()
    if text.lstrip().startswith("["):
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def from_captioned_rows(name: str, rows: list[dict], media_dir: Path, paragraph: bool = False) -> RetrievalBenchmark:
    """Rows `{"video"|"clip_name"|"image": path, "caption": str | [str], "start"?, "end"?, "attributes"?}`:
    one text per caption (or, for paragraph retrieval, all of an item's captions joined into one)."""
    items: list[RetrievalItem] = []
    texts: list[str] = []
    truths: list[list[int]] = []
    attributes: list[dict] = []
    for row in rows:
        key = row.get("video") or row.get("clip_name") or row.get("image")
        if key is None or "caption" not in row:
            raise ValueError(f"{name}: a row without video/clip_name/image or caption: {str(row)[:120]}")
        kind = "image" if "image" in row else "video"
        path = resolve_media(media_dir, key) if kind == "video" else media_dir / key
        items.append(RetrievalItem(key, path, kind, float(row.get("start", 0.0)), row.get("end")))
        captions = row["caption"] if isinstance(row["caption"], list) else [row["caption"]]
        if paragraph:
            captions = [" ".join(captions)]
        for caption in captions:
            texts.append(caption)
            truths.append([len(items) - 1])
            attributes.append(row.get("attributes", {}))
    return RetrievalBenchmark(name, items, texts, truths, text_attributes=attributes)


def load_jsonl(annotations: Path, media_dir: Path) -> RetrievalBenchmark:
    return from_captioned_rows("jsonl", read_rows(annotations), media_dir)


READERS: dict[str, Callable[[Path, Path], RetrievalBenchmark]] = {"jsonl": load_jsonl}


def load_benchmark(name: str, annotations: str | Path, media_dir: str | Path) -> RetrievalBenchmark:
    if name not in READERS:
        raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(sorted(READERS))}")
    return READERS[name](Path(annotations), Path(media_dir))
