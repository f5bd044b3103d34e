"""What the archive keeps of its encoded work: a vanished folder, a moved folder, heavy deletion, kills in compaction.

On a synthetic archive indexed with the bundled model (a folder of videos standing for a disk, and a folder of
photos), each step a real index run or compaction:

1. the disk's folder vanishes (moved away), the archive is indexed: its files go offline; it comes back and is
   indexed again: clips encoded and decode requests (0 expected), time against the first run's;
2. the folder is moved (renamed) and indexed: clips encoded (0 expected), time against the first run's;
3. most files (`--delete` share, spread over the folders) are deleted and the archive indexed (automatic
   compaction off), then compacted:
   feature-store bytes per clip before and after, against a fresh archive of the files that remain (<= 1.3x);
4. that compaction, run again in a child process on 10 copies of the deleted-from archive, killed with SIGKILL at
   a random moment of it: `verify` after each, and whether every searchable clip is still there.

    python benchmarks/keep_work.py [--videos 40] [--images 10] [--delete 0.8] [--work bench-out/keep_work]
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
COMPACT = """
import sys, time
from indexer.settings import load_settings
from indexer.store.archive import Archive
archive = Archive(load_settings(sys.argv[1], sys.argv[2]))
print("start", flush=True)
started = time.perf_counter()
archive.compact()
print("done", time.perf_counter() - started, flush=True)
"""


def settings_in(folder: Path):
    from indexer.settings import Settings, sqlite_url

    return Settings(folder, sqlite_url(folder / "catalog.sqlite"), folder / "index", None)


def bytes_per_clip(settings) -> tuple[float, int]:
    from indexer.store.archive import Archive

    archive = Archive(settings)
    stats = archive.stats()
    archive.close()
    return stats.features.bytes / max(stats.catalog.clips_ready, 1), stats.catalog.clips_ready


def compaction_child(settings, kill_after: float | None) -> tuple[bool, float]:
    """(killed before it finished, seconds of a compaction left to finish)."""
    command = [sys.executable, "-c", COMPACT, settings.db_url, str(settings.index_dir)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "start"
    if kill_after is None:
        seconds = float(child.stdout.readline().split()[1])
        child.wait()
        return False, seconds
    time.sleep(kill_after)
    child.send_signal(signal.SIGKILL)
    finished = "done" in child.stdout.read()
    child.wait()
    return not finished, 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=40)
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--delete", type=float, default=0.8, help="share of the files deleted in step 3")
    parser.add_argument("--work", type=Path, default=REPO / "bench-out" / "keep_work")
    args = parser.parse_args()

    from indexer.indexing.pipeline import IndexOptions, index_paths
    from indexer.settings import default_model_dir
    from indexer.store.archive import Archive
    from indexer.synthetic.generate import generate
    from mplug2.bundle import load_model_bundle

    data = args.work / "media"
    if not (data / "manifest.json").exists():
        generate(data, seed=5, train_videos=0, train_images=0, test_videos=args.videos, test_images=args.images)
    bundle = load_model_bundle(default_model_dir(), with_fusion=False)
    root, state = args.work / "archive", args.work / "state"
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(state, ignore_errors=True)
    shutil.copytree(data / "test" / "videos", root / "disk")
    shutil.copytree(data / "test" / "images", root / "photos")
    settings = settings_in(state)

    def run(**options):
        return index_paths([root], settings, bundle, IndexOptions(progress=False, **options))

    first = run()
    base_s = first.timings["total"]
    print(f"first run: {first.indexed} files, {first.clips} clips encoded in {base_s:.1f} s")

    shutil.move(root / "disk", args.work / "unplugged")
    gone = run()
    shutil.move(args.work / "unplugged", root / "disk")
    back = run()
    print(
        f"1. folder vanished: {gone.offline} files offline, {gone.removed} retired; back: {back.reused} files "
        f"reused, {back.clips} clips encoded, {sum(back.decoders.values())} decode requests, "
        f"{back.timings['total']:.2f} s ({back.timings['total'] / base_s:.3f}x the first run)"
    )

    (root / "disk").rename(root / "moved")
    moved = run()
    print(
        f"2. folder of {moved.reused} files moved: {moved.clips} clips encoded, {sum(moved.decoders.values())} "
        f"decode requests, {moved.timings['total']:.2f} s ({moved.timings['total'] / base_s:.3f}x the first run)"
    )

    # Deleted from folders that stay (a folder that is gone or emptied would make its files offline, not deleted):
    # spread over the folders, one file in 1 / (1 - delete) kept in each.
    files = sorted(p for p in root.rglob("*") if p.is_file())
    keep_every = max(2, round(1 / (1 - args.delete)))
    deleted = [path for number, path in enumerate(files) if number % keep_every]
    for path in deleted:
        path.unlink()
    run(compact_above=1.0)  # retired, not yet compacted
    dead_per_clip, clips = bytes_per_clip(settings)
    shutil.copytree(state, args.work / "dead")
    archive = Archive(settings)
    report = archive.compact()
    archive.close()
    compacted_per_clip, _ = bytes_per_clip(settings)
    fresh = settings_in(args.work / "fresh")
    shutil.rmtree(fresh.home, ignore_errors=True)
    index_paths([root], fresh, bundle, IndexOptions(progress=False))
    fresh_per_clip, fresh_clips = bytes_per_clip(fresh)
    print(
        f"3. {len(deleted)} of {len(files)} files deleted: {dead_per_clip / 1024:.1f} KB a clip before compaction, "
        f"{compacted_per_clip / 1024:.1f} KB after ({report.clips_dropped if report else 0} clips dropped); a fresh "
        f"archive of the same {fresh_clips} clips: {fresh_per_clip / 1024:.1f} KB a clip; ratio "
        f"{compacted_per_clip / fresh_per_clip:.2f}x (before compaction {dead_per_clip / fresh_per_clip:.2f}x)"
    )

    timed = settings_in(args.work / "kill-timed")
    shutil.rmtree(timed.home, ignore_errors=True)
    shutil.copytree(args.work / "dead", timed.home)
    _, seconds = compaction_child(timed, None)
    rng = np.random.default_rng(0)
    clean = midway = kept = 0
    for attempt in range(10):
        copy = settings_in(args.work / f"kill-{attempt}")
        shutil.rmtree(copy.home, ignore_errors=True)
        shutil.copytree(args.work / "dead", copy.home)
        killed, _ = compaction_child(copy, float(rng.uniform(0, seconds)))
        midway += killed
        archive = Archive(copy)
        clean += archive.verify().ok
        kept += len(archive.catalog.ready_clip_ids()) == clips
        archive.close()
        shutil.rmtree(copy.home)
    print(
        f"4. compaction takes {seconds:.2f} s; 10 kills at random moments ({midway} before it finished): verify "
        f"clean {clean}/10, every searchable clip kept {kept}/10"
    )


if __name__ == "__main__":
    main()
