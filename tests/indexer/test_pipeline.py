"""Indexing real archives: what gets recorded, incremental updates, and crash safety under real kills."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from indexer.indexing.pipeline import IndexOptions, index_paths
from indexer.settings import Settings
from indexer.store.archive import Archive
from indexer.store.features import FeatureStore
from indexer.store.vectors import VectorIndex
from mplug2 import load_model_bundle

REPO = Path(__file__).resolve().parents[2]
BROKEN = {
    "zero-bytes.mp4": "empty",
    "notes.mp4": "not_media",
    "truncated-before-moov.mp4": "corrupt",
    "audio-only.mp4": "not_media",
}


def run_index(archive_dir: Path, settings: Settings, model_dir: Path, **options):
    bundle = load_model_bundle(model_dir, with_fusion=False)
    return index_paths([archive_dir], settings, bundle, IndexOptions(progress=False, **options))


def assert_consistent(settings: Settings) -> None:
    """The database, the feature store and the saved index agree; no file is half-indexed."""
    archive = Archive(settings)
    report = archive.verify()
    assert report.ok, report.problems
    statuses = {m.status for root in archive.catalog.roots() for m in archive.catalog.media_under(root)}
    assert "indexing" not in statuses
    archive.close()


def test_each_file_counts_once_when_its_own_clip_fills_a_batch(
    archive_dir: Path, settings: Settings, tiny_model_dir: Path
) -> None:
    """With batches of one, a file's last clip is written inside the step that decoded it; it must still be
    committed and counted once, and the progress never passes its total."""
    seen: list[dict] = []
    bundle = load_model_bundle(tiny_model_dir, with_fusion=False)
    summary = index_paths([archive_dir], settings, bundle, IndexOptions(progress=False, batch_size=1), seen.append)
    assert summary.indexed == 12 + 4 + 1 and summary.failed == len(BROKEN)
    assert all(event["done"] <= event["total"] for event in seen), seen[-1]
    assert_consistent(settings)


def test_an_archive_with_broken_files_is_indexed_and_every_failure_recorded(
    archive_dir: Path, settings: Settings, tiny_model_dir: Path
) -> None:
    summary = run_index(archive_dir, settings, tiny_model_dir)
    assert summary.status == "done"
    assert summary.indexed == 12 + 4 + 1 and summary.failed == len(BROKEN)
    assert summary.seen == 17 + len(BROKEN), "README.txt is not a media candidate"
    failures = {Path(path).name: code for path, code, _ in summary.failures}
    assert failures == BROKEN
    assert all(Path(path).name in message for path, _, message in summary.failures), "messages name the file"
    archive = Archive(settings)
    long_video = next(m for m in archive.catalog.media_under(str(archive_dir)) if "long" in m.path)
    clips = archive.catalog.clips_of_media(long_video.id)
    assert len(clips) == summary.clips - 16 and clips[0].start == 0.0
    assert clips[-1].end == pytest.approx(long_video.duration, abs=0.01)
    assert archive.catalog.thumbnail(clips[0].id)[:2] == b"\xff\xd8", "a JPEG thumbnail per clip"
    assert set(summary.timings) >= {"read", "probe", "decode", "encode", "write", "total"}
    assert archive.catalog.last_run().status == "done"
    assert_consistent(settings)


def test_updates_are_incremental(archive_dir: Path, settings: Settings, tiny_model_dir: Path) -> None:
    first = run_index(archive_dir, settings, tiny_model_dir)
    again = run_index(archive_dir, settings, tiny_model_dir)
    assert (again.indexed, again.unchanged, again.failed) == (0, first.seen, 0)

    clips = sorted((archive_dir / "clips" / "videos").iterdir())
    touched, changed, deleted = clips[0], clips[1], clips[2]
    os.utime(touched, (time.time() + 100, time.time() + 100))  # same bytes, new mtime
    archive = Archive(settings)
    old_changed_ids = [c.id for c in archive.catalog.clips_of_media(archive.catalog.media_by_path(str(changed)).id)]
    deleted_ids = [c.id for c in archive.catalog.clips_of_media(archive.catalog.media_by_path(str(deleted)).id)]
    archive.close()
    shutil.copy(clips[3], changed)  # new content under the old name
    deleted.unlink()
    update = run_index(archive_dir, settings, tiny_model_dir)
    # The changed file now holds another stored file's content: a copy, whose clips are reused, not re-encoded.
    assert (update.indexed, update.reused, update.clips, update.removed) == (0, 1, 0, 1)
    assert update.unchanged == first.seen - 2
    archive = Archive(settings)
    assert archive.catalog.media_by_path(str(touched)).mtime == pytest.approx(touched.stat().st_mtime)
    new_ids = [c.id for c in archive.catalog.clips_of_media(archive.catalog.media_by_path(str(changed)).id)]
    assert set(new_ids).isdisjoint(old_changed_ids), "re-indexed clips get new ids"
    index = VectorIndex.load(archive.vectors_path)
    gone = set(old_changed_ids) | set(deleted_ids)
    assert gone.isdisjoint(index.ids().tolist()) and gone.isdisjoint(archive.store.ids().tolist())
    assert archive.catalog.media_by_path(str(deleted)).status == "missing"
    archive.close()
    assert_consistent(settings)


def index_command(archive_dir: Path, settings: Settings, model_dir: Path, json_output: bool = True) -> list[str]:
    return [
        sys.executable,
        "-m",
        "indexer",
        "index",
        str(archive_dir),
        "--model",
        str(model_dir),
        "--db",
        settings.db_url,
        "--index-dir",
        str(settings.index_dir),
        "--batch-size",
        "2",
        *(["--json"] if json_output else []),
    ]


def wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the condition never came true")
        time.sleep(0.02)


def count(settings: Settings, sql: str) -> int:
    database = settings.db_url.removeprefix("sqlite:///")
    if not Path(database).exists():
        return 0
    try:
        with sqlite3.connect(database, timeout=5) as connection:
            return connection.execute(sql).fetchone()[0]
    except sqlite3.OperationalError:  # tables not created yet
        return 0


def shards(settings: Settings) -> int:
    return len(list((settings.index_dir / "features" / "shards").glob("shard-*"))) if settings.index_dir.exists() else 0


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["first file in flight", "first shard written", "five files indexed"])
def test_a_kill_at_any_moment_then_a_rerun_indexes_every_file_exactly_once(
    archive_dir: Path, settings: Settings, tiny_model_dir: Path, moment: str
) -> None:
    conditions = {
        "first file in flight": lambda: count(settings, "SELECT count(*) FROM media WHERE status='indexing'") > 0,
        "first shard written": lambda: shards(settings) > 0,
        "five files indexed": lambda: count(settings, "SELECT count(*) FROM media WHERE status='indexed'") >= 5,
    }
    process = subprocess.Popen(
        index_command(archive_dir, settings, tiny_model_dir),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(conditions[moment])
    process.send_signal(signal.SIGKILL)
    process.wait()
    rerun = subprocess.run(
        index_command(archive_dir, settings, tiny_model_dir), cwd=REPO, capture_output=True, text=True
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert_consistent(settings)
    archive = Archive(settings)
    media = archive.catalog.media_under(str(archive_dir))
    assert len(media) == len({m.path for m in media}) == 17 + len(BROKEN)
    assert sum(m.status == "indexed" for m in media) == 17
    ready = archive.catalog.ready_clip_ids()
    per_file = [len(archive.catalog.clips_of_media(m.id)) for m in media if m.status == "indexed"]
    assert sum(per_file) == len(ready) and min(per_file) >= 1
    assert np.array_equal(np.sort(FeatureStore(settings.features_dir).ids()), ready), "no orphan vector"
    assert np.array_equal(VectorIndex.load(archive.vectors_path).ids(), ready)
    archive.close()


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_after_the_work_in_flight(archive_dir: Path, settings: Settings, tiny_model_dir: Path):
    process = subprocess.Popen(
        index_command(archive_dir, settings, tiny_model_dir),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: count(settings, "SELECT count(*) FROM media WHERE status='indexed'") >= 3)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr[-2000:]
    assert count(settings, "SELECT count(*) FROM index_runs WHERE status='interrupted'") == 1
    assert_consistent(settings)  # nothing left half-done, no rerun needed for that
    finished = subprocess.run(index_command(archive_dir, settings, tiny_model_dir), cwd=REPO, capture_output=True)
    assert finished.returncode == 0
    assert count(settings, "SELECT count(*) FROM media WHERE status='indexed'") == 17
