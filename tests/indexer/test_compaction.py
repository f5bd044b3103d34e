"""Compaction gives back the space of retired clips, and a kill -9 at any moment of it leaves a consistent archive.

The archives here are written through the archive's own calls (begin, add clips, store vectors, commit) with
random vectors and tokens: compaction never looks at what the vectors mean, and no model is needed to make many.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from indexer.atomic import atomic_write_json
from indexer.settings import Settings, load_settings
from indexer.store.archive import Archive
from indexer.store.db.records import FileStamp, ProbeFacts

DIM, HIDDEN, GRID, FRAMES = 16, 32, 4, 4
FACTS = ProbeFacts("video", 4.0, 25.0, 100, 64, 64, "h264", 0)


def make_settings(base: Path) -> Settings:
    return load_settings(f"sqlite:///{base / 'catalog.sqlite'}", base / "index")


def synthetic_archive(settings: Settings, files: int, clips_per_file: int, seed: int = 0) -> Archive:
    """An archive of `files` files with `clips_per_file` clips each (full tokens), one feature shard per file."""
    settings.index_dir.mkdir(parents=True, exist_ok=True)
    meta = {
        "model": "synthetic",
        "model_fingerprint": "synthetic",
        "dim": DIM,
        "factory": "Flat",
        "feature_mode": "full",
    }
    atomic_write_json(settings.index_dir / "archive.json", meta)
    archive = Archive(settings)
    rng = np.random.default_rng(seed)
    with archive.writing():
        root = archive.add_root(settings.index_dir.parent / "media")
        run_id = archive.start_run("synthetic", {}, [root])
        for number in range(files):
            stamp = FileStamp(1000 + number, 1.0, f"hash-{number}")
            media_id = archive.begin_file(f"{root}/file-{number:04d}.mp4", root, stamp, FACTS)
            ids = np.array(archive.add_clips(media_id, [(i, i + 1.0, None) for i in range(clips_per_file)]))
            itc = rng.standard_normal((len(ids), DIM)).astype(np.float32)
            itc /= np.linalg.norm(itc, axis=1, keepdims=True)
            tokens = [rng.standard_normal((1 + FRAMES * GRID * GRID, HIDDEN)).astype(np.float32) for _ in ids]
            archive.store_vectors(ids, itc, tokens, GRID)
            archive.commit_file(media_id, ids.tolist())
        archive.finish_run(run_id, "done", {}, {})
    return archive


def delete_most(archive: Archive, share: float) -> None:
    """Retire the first `share` of the files (as an index run does when they are deleted)."""
    media = archive.catalog.media_under(archive.roots()[0])
    with archive.writing():
        archive.retire_files([m.id for m in media[: int(len(media) * share)]])
        archive.save_index()


def top_hits(archive: Archive, queries: np.ndarray) -> np.ndarray:
    archive.refresh()
    return archive.search(queries, 5).ids


def test_compaction_after_heavy_deletion_comes_within_a_fresh_archives_bytes_per_clip(tmp_path: Path) -> None:
    archive = synthetic_archive(make_settings(tmp_path / "old"), files=60, clips_per_file=4)
    delete_most(archive, 0.8)
    queries = np.random.default_rng(1).standard_normal((4, DIM)).astype(np.float32)
    before_hits, kept = top_hits(archive, queries), archive.catalog.ready_clip_ids()
    tokens_before = archive.tokens(kept[:3].tolist())
    assert archive.compact(min_dead_share=0.9) is None, "80% dead is under a 90% threshold: nothing to do"
    report = archive.compact()
    assert report is not None and report.clips_dropped == 48 * 4
    assert archive.verify().ok, archive.verify().problems
    assert np.array_equal(archive.catalog.ready_clip_ids(), kept)
    assert np.array_equal(top_hits(archive, queries), before_hits)
    for old, new in zip(tokens_before, archive.tokens(kept[:3].tolist()), strict=True):
        assert np.array_equal(old, new)
    fresh = synthetic_archive(make_settings(tmp_path / "fresh"), files=12, clips_per_file=4)
    fresh_per_clip = fresh.store.size_bytes() / len(fresh.store.ids())
    ratio = report.bytes_per_clip / fresh_per_clip
    print(f"bytes per clip: compacted {report.bytes_per_clip:.0f}, fresh {fresh_per_clip:.0f}, ratio {ratio:.2f}")
    assert ratio <= 1.3
    assert archive.compact() is None, "a compacted archive has nothing left to drop"


COMPACT = """
import sys, time
import indexer.store.features as features
features.COMPACT_GROUP_BYTES = 32 << 10  # many small groups: many journaled steps to be killed in
from indexer.settings import load_settings
from indexer.store.archive import Archive
archive = Archive(load_settings(sys.argv[1], sys.argv[2]))
print("start", flush=True)
started = time.perf_counter()
archive.compact()
print("done", time.perf_counter() - started, flush=True)
"""


def run_compaction(settings: Settings, kill_after: float | None) -> tuple[bool, float]:
    """Compact in a child process, killed with SIGKILL `kill_after` seconds into the compaction (None: let it
    finish). Returns (whether it was killed before finishing, the compaction's own seconds if it finished)."""
    child = subprocess.Popen(
        [sys.executable, "-c", COMPACT, settings.db_url, str(settings.index_dir)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "start"
    if kill_after is None:
        line = child.stdout.readline().split()
        child.wait(timeout=120)
        return False, float(line[1])
    time.sleep(kill_after)
    child.send_signal(signal.SIGKILL)
    output = child.stdout.read()
    child.wait(timeout=30)
    return "done" not in output, 0.0


@pytest.mark.slow
def test_ten_kills_during_compaction_each_leave_a_consistent_archive(tmp_path: Path) -> None:
    template = make_settings(tmp_path / "template")
    archive = synthetic_archive(template, files=200, clips_per_file=2)
    delete_most(archive, 0.6)
    queries = np.random.default_rng(2).standard_normal((4, DIM)).astype(np.float32)
    kept, hits = archive.catalog.ready_clip_ids(), top_hits(archive, queries)
    archive.close()

    timed = make_settings(tmp_path / "timed")
    shutil.copytree(tmp_path / "template", tmp_path / "timed")
    _, seconds = run_compaction(timed, None)
    rng = np.random.default_rng(3)
    killed_midway = 0
    for attempt in range(10):
        settings = make_settings(tmp_path / f"kill-{attempt}")
        shutil.copytree(tmp_path / "template", tmp_path / f"kill-{attempt}")
        killed, _ = run_compaction(settings, float(rng.uniform(0, seconds)))
        killed_midway += killed
        after = Archive(settings)
        report = after.verify()
        assert report.ok, (attempt, report.problems)
        assert np.array_equal(after.catalog.ready_clip_ids(), kept), "nothing searchable lost"
        assert np.array_equal(top_hits(after, queries), hits)
        finished = after.compact()  # the next compaction finishes the job
        assert after.verify().ok and (finished is None or finished.clips_dropped >= 0)
        assert after.store.dead_share(after.catalog.kept_clip_ids()) == 0
        after.close()
    print(f"compaction {seconds:.2f} s; 10 kills, {killed_midway} before it finished; verify clean after each")
    assert killed_midway >= 5, "most kills must land inside the compaction for the test to mean anything"


def test_the_compact_and_status_commands(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from indexer.cli import cli

    settings = make_settings(tmp_path / "cli")
    archive = synthetic_archive(settings, files=10, clips_per_file=2)
    delete_most(archive, 0.5)
    media = archive.catalog.media_under(archive.roots()[0])
    with archive.writing():
        archive.set_offline([media[-1].id])
    archive.close()
    where = ["--db", settings.db_url, "--index-dir", str(settings.index_dir)]
    runner = CliRunner()
    compacted = runner.invoke(cli, ["compact", *where])
    assert compacted.exit_code == 0 and "compacted: 10 retired clips dropped" in compacted.output, compacted.output
    assert "nothing to compact" in runner.invoke(cli, ["compact", *where]).output
    status = runner.invoke(cli, ["status", *where])
    assert "offline   1 file (2 clips) whose folder is gone or empty" in status.output, status.output
    assert runner.invoke(cli, ["verify", *where]).exit_code == 0, "offline clips keep their vectors, out of the index"
