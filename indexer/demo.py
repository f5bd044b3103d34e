"""The demo archive: a small folder of synthetic videos (short clips and long multi-scene ones), images and a few
broken files, made by the synthetic generator so that the bundled model has something it can really find.

The videos and images come from the generator's held-out test split: colour, shape and motion combinations the
bundled model never saw in training, so the demo shows zero-shot retrieval, not recall of training data.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from indexer.synthetic.generate import generate


def _example_queries(annotations: Path, count: int) -> list[dict]:
    """Captions of a few demo files, with the file each should find (the test captions are fresh sentences)."""
    rows = [json.loads(line) for line in annotations.read_text().splitlines() if line.strip()]
    return [
        {"query": row["caption"], "expect": row.get("video") or row.get("image"), "kind": _kind(row)}
        for row in rows[:count]
    ]


def _kind(row: dict) -> str:
    return "video" if "video" in row else "image"


def _write_bad_files(folder: Path, sample_video: Path) -> list[str]:
    """Files an archive really holds now and then: empty, mislabelled, cut short."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "meeting-notes.mp4").write_text("Not a video: a text file with the wrong extension.\n" * 10)
    data = sample_video.read_bytes()
    (folder / "cut-short.mp4").write_bytes(data[: len(data) // 3])  # the moov atom sits at the end: unplayable
    return sorted(path.name for path in folder.iterdir())


def build_demo_archive(folder: Path, seed: int = 1, workers: int | None = None) -> dict:
    """Write the demo media under `folder` (once; a finished folder is reused). Returns what it holds."""
    folder = Path(folder)
    summary_path = folder / "demo.json"
    if summary_path.is_file():
        return json.loads(summary_path.read_text())
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    manifest = generate(
        staging / "synthetic",
        seed=seed,
        train_videos=0,
        train_images=0,
        test_videos=40,
        test_images=24,
        long_videos=3,
        workers=workers,
    )
    media = staging / "synthetic"
    first_video = next(iter(sorted((media / "test" / "videos").iterdir())))
    bad = _write_bad_files(staging / "broken", first_video)
    queries = _example_queries(media / "annotations" / "test_videos.jsonl", 3)
    queries += _example_queries(media / "annotations" / "test_images.jsonl", 1)
    summary = {"counts": manifest["counts"], "broken_files": bad, "queries": queries}
    (staging / "demo.json").write_text(json.dumps(summary, indent=1) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)  # the folder appears whole or not at all
    return summary
