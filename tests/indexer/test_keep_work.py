"""Encoded clips are kept: a vanished folder goes offline and comes back, a moved folder and a copied file reuse
their clips, and an archive written before schema v4 opens, keeps every clip and encodes nothing on its next run.

"Encoded nothing" is read from the run's own counts: `clips` counts clips encoded and committed, and `decoders`
counts decode requests sent to the pool; both must be 0.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, text

from indexer.indexing.pipeline import IndexOptions, index_paths
from indexer.settings import Settings
from indexer.store.archive import Archive, ArchiveError
from indexer.store.db import migrations
from indexer.store.vectors import VectorIndex
from mplug2 import load_model_bundle

REPO = Path(__file__).resolve().parents[2]
BEFORE_V4 = "13b38cc"  # the last commit whose code wrote schema v3


def run_index(roots: list[Path], settings: Settings, model_dir: Path, **options):
    bundle = load_model_bundle(model_dir, with_fusion=False)
    return index_paths(roots, settings, bundle, IndexOptions(progress=False, **options))


def encodes(summary) -> tuple[int, int]:
    """(clips encoded, decode requests) of a run."""
    return summary.clips, sum(summary.decoders.values())


def clip_ids_inside(archive: Archive, folder: Path) -> list[int]:
    return sorted(c for m in archive.files_inside(str(folder)) for c in archive.catalog.kept_clip_ids_of(m.id))


def assert_verified(settings: Settings) -> None:
    archive = Archive(settings)
    report = archive.verify()
    archive.close()
    assert report.ok, report.problems


def test_a_vanished_folder_goes_offline_and_comes_back_with_nothing_encoded(
    archive_dir: Path, settings: Settings, tiny_model_dir: Path, tmp_path: Path
) -> None:
    run_index([archive_dir], settings, tiny_model_dir)
    videos = archive_dir / "clips" / "videos"
    archive = Archive(settings)
    searchable, offline_ids = archive.catalog.ready_clip_ids(), clip_ids_inside(archive, videos)
    archive.close()
    shutil.move(videos, tmp_path / "unplugged")  # the disk holding the folder is not there

    gone = run_index([archive_dir], settings, tiny_model_dir)
    assert (gone.offline, gone.removed, gone.indexed, *encodes(gone)) == (12, 0, 0, 0, 0)
    archive = Archive(settings)
    stats = archive.stats()
    assert stats.catalog.count("offline") == 12 and stats.offline == [(str(videos), 12)]
    assert stats.catalog.clips_offline == len(offline_ids)
    assert set(offline_ids) <= set(archive.store.ids().tolist()), "their vectors are kept"
    assert set(offline_ids).isdisjoint(VectorIndex.load(archive.vectors_path).ids().tolist()), "not searchable"
    assert set(offline_ids).isdisjoint(archive.catalog.ready_clip_ids().tolist())
    archive.close()
    assert_verified(settings)

    shutil.move(tmp_path / "unplugged", videos)
    back = run_index([archive_dir], settings, tiny_model_dir)
    assert (back.reused, back.indexed, *encodes(back)) == (12, 0, 0, 0)
    print(f"folder of 12 files back: {back.clips} clips encoded, {back.clips_reused} reused")
    archive = Archive(settings)
    assert np.array_equal(archive.catalog.ready_clip_ids(), searchable), "every clip searchable again"
    assert np.array_equal(VectorIndex.load(archive.vectors_path).ids(), searchable)
    archive.close()
    assert_verified(settings)

    # An empty mount point (the folder is there, empty) means the same; --prune-missing forgets them on purpose.
    shutil.move(videos, tmp_path / "unplugged")
    videos.mkdir()
    assert run_index([archive_dir], settings, tiny_model_dir).offline == 12
    pruned = run_index([archive_dir], settings, tiny_model_dir, prune_missing=True)
    assert (pruned.removed, pruned.offline) == (12, 0)
    assert pruned.compacted_bytes > 0, "most of the store was theirs: the run compacted it"
    archive = Archive(settings)
    assert archive.stats().offline == [] and archive.catalog.stats().clips_offline == 0
    archive.close()
    assert_verified(settings)


def test_a_missing_root_goes_offline_instead_of_stopping_the_run(
    synthetic_media: Path, settings: Settings, tiny_model_dir: Path, tmp_path: Path
) -> None:
    usb = tmp_path / "usb"
    usb.mkdir()
    for name in ("test-00000.mp4", "test-00001.mp4"):
        shutil.copy(synthetic_media / "test" / "videos" / name, usb / name)
    run_index([usb], settings, tiny_model_dir)
    shutil.move(usb, tmp_path / "elsewhere")
    gone = run_index([usb], settings, tiny_model_dir)
    assert (gone.offline, gone.removed) == (2, 0)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        run_index([tmp_path / "never-indexed"], settings, tiny_model_dir)
    shutil.move(tmp_path / "elsewhere", usb)
    back = run_index([usb], settings, tiny_model_dir)
    assert (back.reused, *encodes(back)) == (2, 0, 0)
    assert_verified(settings)


def test_a_moved_folder_and_a_copied_file_reuse_their_clips(
    archive_dir: Path, settings: Settings, tiny_model_dir: Path
) -> None:
    first = run_index([archive_dir], settings, tiny_model_dir)
    archive = Archive(settings)
    searchable = archive.catalog.ready_clip_ids()
    source = archive.media(str(archive_dir / "clips" / "videos" / "test-00000.mp4"))
    source_clips = archive.catalog.kept_clip_ids_of(source.id)
    archive.close()
    os.rename(archive_dir / "clips", archive_dir / "renamed")  # 16 files (12 videos, 4 images) move

    moved = run_index([archive_dir], settings, tiny_model_dir)
    assert (moved.reused, moved.indexed, moved.removed, moved.offline, *encodes(moved)) == (16, 0, 0, 0, 0, 0)
    assert moved.unchanged == first.seen - 16
    print(f"moved folder of 16 files: {moved.clips} clips encoded, {moved.clips_reused} reused")
    archive = Archive(settings)
    assert np.array_equal(archive.catalog.ready_clip_ids(), searchable)
    moved_file = archive.media(str(archive_dir / "renamed" / "videos" / "test-00000.mp4"))
    assert moved_file.id == source.id and archive.catalog.kept_clip_ids_of(source.id) == source_clips
    archive.close()

    shutil.copy(archive_dir / "renamed" / "videos" / "test-00000.mp4", archive_dir / "copy.mp4")
    copied = run_index([archive_dir], settings, tiny_model_dir)
    assert (copied.reused, copied.indexed, *encodes(copied)) == (1, 0, 0, 0)
    archive = Archive(settings)
    copy = archive.media(str(archive_dir / "copy.mp4"))
    copy_clips = archive.catalog.kept_clip_ids_of(copy.id)
    assert copy.status == "indexed" and len(copy_clips) == len(source_clips)
    assert set(copy_clips).isdisjoint(source_clips), "a copy has clips of its own (ids are never shared)"
    _, original = archive.store.itc(np.array(source_clips))
    _, copied_vectors = archive.store.itc(np.array(copy_clips))
    assert np.array_equal(original, copied_vectors)
    assert all(archive.thumbnail(c) for c in copy_clips)
    archive.close()
    assert_verified(settings)


@pytest.fixture
def code_before_v4(tmp_path: Path) -> Path:
    """The indexer and model packages as they were before schema v4, from the repository's history."""
    base = tmp_path / "before-v4"
    base.mkdir()
    try:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", BEFORE_V4, "indexer", "mplug2"], capture_output=True, check=True
        )
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"the code of {BEFORE_V4} is not in this checkout's git history ({error})")
    subprocess.run(["tar", "-x", "-C", str(base)], input=archive.stdout, check=True)
    return base


def test_an_archive_written_before_schema_v4_opens_keeps_its_clips_and_encodes_nothing(
    synthetic_media: Path, settings: Settings, tiny_model_dir: Path, tmp_path: Path, code_before_v4: Path
) -> None:
    root = tmp_path / "media"
    shutil.copytree(synthetic_media / "test" / "images", root / "images")
    shutil.copy(synthetic_media / "test" / "videos" / "test-00000.mp4", root / "video.mp4")
    command = [sys.executable, "-m", "indexer", "index", str(root), "--model", str(tiny_model_dir), "--json"]
    command += ["--db", settings.db_url, "--index-dir", str(settings.index_dir)]
    env = {**os.environ, "PYTHONPATH": str(code_before_v4)}
    subprocess.run(command, check=True, capture_output=True, env=env, cwd=tmp_path)
    engine = create_engine(settings.db_url)
    with engine.connect() as connection:
        assert migrations.current_version(connection) == 3, "the old code wrote the archive"
        searchable = sorted(connection.execute(text("SELECT id FROM clips WHERE status = 'ready'")).scalars())
    engine.dispose()

    again = run_index([root], settings, tiny_model_dir)  # opening upgrades in place
    assert (again.indexed, again.unchanged, *encodes(again)) == (0, 5, 0, 0)
    archive = Archive(settings)
    with archive.catalog.engine.connect() as connection:
        assert migrations.current_version(connection) == migrations.LATEST_VERSION
    assert archive.catalog.ready_clip_ids().tolist() == searchable
    archive.close()
    assert_verified(settings)


def test_files_whose_stored_vectors_were_lost_are_encoded_again(
    archive_dir: Path, settings: Settings, tiny_model_dir: Path
) -> None:
    run_index([archive_dir], settings, tiny_model_dir)
    archive = Archive(settings)
    searchable = len(archive.catalog.ready_clip_ids())
    shard = sorted(archive.store.shards_dir.iterdir())[0]
    lost = set(archive.store.ids().tolist())
    archive.close()
    shard.unlink()  # a shard gone (deleted by hand, lost with a disk): its clips' vectors with it
    archive = Archive(settings)
    lost -= set(archive.store.ids().tolist())
    files = {
        m.path for m in archive.files_inside(str(archive_dir)) if set(archive.catalog.kept_clip_ids_of(m.id)) & lost
    }
    archive.close()
    assert lost and files

    again = run_index([archive_dir], settings, tiny_model_dir)
    # Only the files that lost vectors are encoded; every other file (bad ones too: not retried) is unchanged.
    assert again.indexed == len(files) and again.unchanged == again.seen - len(files) and again.failed == 0
    assert again.clips >= len(lost), "every lost clip encoded again"
    archive = Archive(settings)
    assert len(archive.catalog.ready_clip_ids()) == searchable
    archive.close()
    assert_verified(settings)


def test_a_catalog_without_its_index_folder_is_refused_and_kept_as_it_was(
    archive_dir: Path, settings: Settings, tiny_model_dir: Path
) -> None:
    run_index([archive_dir], settings, tiny_model_dir)
    archive = Archive(settings)
    searchable = archive.catalog.ready_clip_ids()
    archive.close()
    shutil.rmtree(settings.index_dir)  # a deleted --index-dir, or a new one given with the old catalog
    with pytest.raises(ArchiveError, match=r"lists indexed files, but .* holds no archive of them.*a new --db too"):
        run_index([archive_dir], settings, tiny_model_dir)
    archive = Archive(settings)
    assert np.array_equal(archive.catalog.ready_clip_ids(), searchable), "the catalog is left as it was"
    archive.close()
