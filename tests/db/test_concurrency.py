"""One writer, other readers: readers see whole committed states; a writer killed mid-transaction loses nothing."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

from indexer.store.db import Catalog

WRITER = textwrap.dedent(
    """
    import sys, time
    from indexer.store.db import Catalog
    from indexer.store.db.records import FileStamp, ProbeFacts
    catalog = Catalog(sys.argv[1])
    facts = ProbeFacts("video", 10.0, 10.0, 100, 64, 64, "h264", 0)
    for n in range(int(sys.argv[2])):
        media_id, _ = catalog.begin_media(f"/a/{n}.mp4", "/a", FileStamp(1, 1.0), facts)
        ids = catalog.add_clips(media_id, [(0.0, 5.0, b"j"), (5.0, 10.0, b"j")])
        if sys.argv[3] == "hang" and n == int(sys.argv[2]) - 1:
            with catalog.engine.begin() as connection:  # an open write transaction, then the kill
                connection.exec_driver_sql("UPDATE clips SET status = 'ready' WHERE media_id = %d" % media_id)
                print("in-transaction", flush=True)
                time.sleep(60)
        catalog.commit_media(media_id, ids)
    print("done", flush=True)
    """
)


def _writer(url: str, files: int, mode: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, url, str(files), mode],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )


def test_readers_see_only_whole_files_while_a_writer_commits(db_url: str) -> None:
    reader = Catalog(db_url)
    writer = _writer(db_url, 40, "normal")
    seen = set()
    while writer.poll() is None:
        ids = reader.ready_clip_ids()
        assert len(ids) % 2 == 0, "a file's two clips become ready together"
        seen.add(len(ids))
        time.sleep(0.01)
    assert writer.returncode == 0
    assert len(reader.ready_clip_ids()) == 80
    assert len(seen) > 1, "the reader ran while the writer was committing"


def test_a_writer_killed_inside_a_transaction_leaves_the_last_commit(db_url: str) -> None:
    writer = _writer(db_url, 3, "hang")
    assert writer.stdout.readline().strip() == "in-transaction"
    writer.kill()
    writer.wait()
    catalog = Catalog(db_url)
    assert len(catalog.ready_clip_ids()) == 4, "two files committed, the third's update rolled back"
    assert [m.path for m in catalog.media_by_status("indexing")] == ["/a/2.mp4"]
    media_id = catalog.media_by_path("/a/2.mp4").id
    assert len(catalog.discard_pending(media_id)) == 2
    assert catalog.stats().clips_pending == 0, "and the database is writable again"
