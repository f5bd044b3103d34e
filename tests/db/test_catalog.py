"""The Catalog on a real SQLite file and a real PostgreSQL server: the same behaviour on both."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

from indexer.store.db import Catalog, SearchFilters
from indexer.store.db.records import FileCount, FileStamp, ProbeFacts

VIDEO = ProbeFacts("video", 30.0, 25.0, 750, 1280, 720, "h264", 0)
IMAGE = ProbeFacts("image", 0.0, 0.0, 1, 640, 480, "mjpeg", 0)


def index_file(catalog: Catalog, path: str, facts: ProbeFacts, spans, mtime: float = 1_700_000_000.0) -> list[int]:
    media_id, _ = catalog.begin_media(path, "/archive", FileStamp(1000, mtime, "hash-" + path), facts)
    ids = catalog.add_clips(media_id, [(start, end, b"jpeg") for start, end in spans])
    catalog.commit_media(media_id, ids)
    return ids


def test_clips_become_searchable_only_when_committed(db_url: str) -> None:
    catalog = Catalog(db_url)
    media_id, old = catalog.begin_media("/archive/a.mp4", "/archive", FileStamp(10, 1.0), VIDEO)
    assert old == []
    ids = catalog.add_clips(media_id, [(0.0, 10.0, b"x"), (10.0, 20.0, None)])
    assert catalog.clips(ids) == [] and len(catalog.ready_clip_ids()) == 0
    catalog.commit_media(media_id, ids)
    records = catalog.clips(list(reversed(ids)))
    assert [r.id for r in records] == list(reversed(ids)), "the order asked for is kept"
    assert records[-1].path == "/archive/a.mp4" and records[-1].kind == "video"
    assert catalog.thumbnail(ids[0]) == b"x" and catalog.thumbnail(ids[1]) is None
    assert catalog.media_by_path("/archive/a.mp4").status == "indexed"


def test_reindexing_a_file_replaces_its_clips_and_never_reuses_ids(db_url: str) -> None:
    catalog = Catalog(db_url)
    first = index_file(catalog, "/archive/a.mp4", VIDEO, [(0, 10), (10, 20)])
    media_id, old = catalog.begin_media("/archive/a.mp4", "/archive", FileStamp(20, 2.0, "new"), VIDEO)
    assert sorted(old) == sorted(first)
    second = catalog.add_clips(media_id, [(0, 5, None)])
    catalog.commit_media(media_id, second)
    assert set(second).isdisjoint(first)
    assert catalog.clips(first) == [] and len(catalog.clips(second)) == 1
    assert catalog.thumbnail(first[0]) is None, "thumbnails leave with their clips"


def test_the_generation_grows_with_every_change_to_the_ready_clips(db_url: str) -> None:
    catalog = Catalog(db_url)
    start = catalog.generation()
    first = index_file(catalog, "/archive/a.mp4", VIDEO, [(0, 10)])
    committed = catalog.generation()
    assert committed > start
    media_id, _ = catalog.begin_media("/archive/b.mp4", "/archive", FileStamp(10, 1.0), VIDEO)
    catalog.discard_pending(media_id)
    catalog.add_clips(media_id, [(0, 5, None)])
    assert catalog.generation() == committed, "pending clips are invisible: nothing to look at again"
    catalog.begin_media("/archive/a.mp4", "/archive", FileStamp(20, 2.0), VIDEO)  # its ready clip goes
    assert catalog.generation() > committed and catalog.clips(first) == []
    before = catalog.generation()
    catalog.mark_missing([media_id])
    assert catalog.generation() > before


def test_interrupted_file_can_be_redone(db_url: str) -> None:
    catalog = Catalog(db_url)
    media_id, _ = catalog.begin_media("/archive/a.mp4", "/archive", FileStamp(10, 1.0), VIDEO)
    pending = catalog.add_clips(media_id, [(0, 10, None)])
    assert [m.path for m in catalog.media_by_status("indexing")] == ["/archive/a.mp4"]
    assert catalog.discard_pending(media_id) == pending
    assert catalog.stats().clips_pending == 0


def test_failures_and_missing_files(db_url: str) -> None:
    catalog = Catalog(db_url)
    ids = index_file(catalog, "/archive/gone.mp4", VIDEO, [(0, 10)])
    catalog.fail_media("/archive/bad.mp4", "/archive", FileStamp(0, 1.0), "empty", "/archive/bad.mp4: zero-byte file")
    (failed,) = catalog.failed_media()
    assert (failed.path, failed.error_code) == ("/archive/bad.mp4", "empty")
    gone = catalog.media_by_path("/archive/gone.mp4")
    assert catalog.mark_missing([gone.id]) == ids
    assert catalog.media_by_path("/archive/gone.mp4").status == "missing"
    assert len(catalog.ready_clip_ids()) == 0
    stats = catalog.stats()
    assert set(stats.files) == {FileCount("video", "missing", 1), FileCount("unknown", "failed", 1)}
    assert (stats.count("failed"), stats.count(kind="video"), stats.count("indexed")) == (1, 1, 0)


def test_filters(db_url: str) -> None:
    catalog = Catalog(db_url)
    old = datetime(2020, 1, 1, tzinfo=timezone.utc).timestamp()
    new = datetime(2024, 6, 1, tzinfo=timezone.utc).timestamp()
    holiday = index_file(catalog, "/archive/holiday/beach.mp4", VIDEO, [(0, 10), (10, 20)], mtime=old)
    photo = index_file(catalog, "/archive/holiday/photo.jpg", IMAGE, [(0, 0)], mtime=new)
    work = index_file(catalog, "/archive/work/talk.mp4", ProbeFacts("video", 5.0, 25, 125, 64, 64, "h264", 0), [(0, 5)])
    odd = index_file(catalog, "/archive/100%_real/clip.mp4", VIDEO, [(0, 10)])

    def matching(**kwargs) -> set[int]:
        return set(catalog.clip_ids_matching(SearchFilters(**kwargs)).tolist())

    assert matching() == set(holiday + photo + work + odd)
    assert matching(path_prefix="/archive/holiday") == set(holiday + photo)
    assert matching(path_prefix="/archive/holi") == set(), "a prefix is a folder, not a string prefix"
    assert matching(path_prefix="/archive/100%_real") == set(odd), "LIKE wildcards in paths are escaped"
    assert matching(kinds=("image",)) == set(photo)
    assert matching(min_duration=10.0) == set(holiday + odd)
    assert matching(max_duration=6.0) == set(photo + work)
    assert matching(modified_after=datetime(2022, 1, 1)) == set(photo + work + odd)
    assert matching(modified_before=datetime(2022, 1, 1)) == set(holiday)


def test_roots_are_resolved_and_checked_symlink_safe(db_url: str, tmp_path: Path) -> None:
    catalog = Catalog(db_url)
    archive = tmp_path / "archive"
    (archive / "sub").mkdir(parents=True)
    (tmp_path / "secret.txt").write_text("no")
    os.symlink(tmp_path / "secret.txt", archive / "sub" / "link.txt")
    catalog.add_root(archive)
    catalog.add_root(archive)
    assert catalog.roots() == [str(archive.resolve())]
    assert catalog.is_under_root(archive / "sub" / "x.mp4")
    assert not catalog.is_under_root(archive / ".." / "secret.txt")
    assert not catalog.is_under_root(archive / "sub" / "link.txt"), "a link out of the root is outside it"
    assert not catalog.is_under_root(str(archive) + "-other/x.mp4")


def test_runs(db_url: str) -> None:
    catalog = Catalog(db_url)
    run_id = catalog.start_run("mplug2-synth", {"image_size": 64}, ["/archive"])
    assert catalog.last_run().status == "running"
    catalog.finish_run(run_id, "done", {"indexed": 3}, {"encode": 1.5})
    run = catalog.last_run()
    assert (run.status, run.counts, run.timings, run.roots) == ("done", {"indexed": 3}, {"encode": 1.5}, ["/archive"])
    assert run.finished_at is not None
