"""Walk and plan: which files under the roots need (re)indexing, and which are gone.

A file is a candidate when its first bytes carry a media signature or its name a media extension (so a thousand
README files cost no ffprobe, yet a text file named .mp4 is caught and reported). Each candidate is stat'ed once
here; a file whose size matches the catalog but whose mtime does not is hashed, at most once per run (the hash
travels with the candidate to the commit). Files gone from disk are retired through the archive.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from indexer.archive import Archive
from indexer.db.records import FAILED, INDEXED, MISSING, FileStamp, MediaRecord

MEDIA_EXTENSIONS = {
    ".mp4",
    ".m4v",
    ".mov",
    ".mkv",
    ".webm",
    ".avi",
    ".wmv",
    ".flv",
    ".mpg",
    ".mpeg",
    ".ts",
    ".mts",
    ".m2ts",
    ".3gp",
    ".ogv",
    ".jpg",
    ".jpeg",
    ".png",
    ".gif",
    ".bmp",
    ".tif",
    ".tiff",
    ".webp",
    ".heic",
}
_SIGNATURES = (
    b"\xff\xd8\xff",
    b"\x89PNG",
    b"GIF8",
    b"BM",
    b"II*\x00",
    b"MM\x00*",
    b"\x1a\x45\xdf\xa3",
    b"RIFF",
    b"FLV",
    b"OggS",
    b"\x00\x00\x01\xba",
    b"\x00\x00\x01\xb3",
    b"\x30\x26\xb2\x75",
)


def content_hash(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def looks_like_media(path: Path) -> bool:
    if path.suffix.lower() in MEDIA_EXTENSIONS:
        return True
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError:
        return False
    return head.startswith(_SIGNATURES) or head[4:8] == b"ftyp"


def walk_media(root: Path, skip: set[Path]) -> Iterator[Path]:
    """Candidate media files under `root` (hidden folders and the index itself skipped; links not followed into
    folders, so a link loop cannot trap the walk; links to files are candidates and fail cleanly if broken)."""
    for folder, subfolders, files in os.walk(root, followlinks=False):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith(".") and Path(folder, d).resolve() not in skip)
        for name in sorted(files):
            path = Path(folder, name)
            if not name.startswith(".") and looks_like_media(path):
                yield path


@dataclass(frozen=True)
class Candidate:
    """A file to (re)index, as the walk saw it. `stamp.content_hash` is set when the walk already hashed it."""

    path: Path
    root: str
    stamp: FileStamp

    def hashed(self) -> FileStamp:
        """The stamp with the content hash (computed now if the walk did not need it)."""
        if self.stamp.content_hash is not None:
            return self.stamp
        return replace(self.stamp, content_hash=content_hash(self.path))


@dataclass
class Plan:
    todo: list[Candidate]
    seen: int = 0
    unchanged: int = 0
    removed: int = 0


def plan(archive: Archive, roots: list[Path], retry_failed: bool = False) -> Plan:
    """Walk the roots; retire vanished files; return the files to (re)index."""
    result = Plan([])
    skip = {archive.index_dir.resolve()}
    for root in roots:
        root_key = str(root if root.is_dir() else root.parent)
        archive.add_root(root_key)
        known = archive.files_under(root_key)
        seen: set[str] = set()
        for path in walk_media(root, skip) if root.is_dir() else iter([root]):
            key = str(path)
            seen.add(key)
            result.seen += 1
            try:
                stat = os.stat(path)
            except OSError:  # vanished or unreadable: the decode stage records why
                result.todo.append(Candidate(path, root_key, FileStamp(0, 0.0)))
                continue
            stamp = FileStamp(stat.st_size, stat.st_mtime)
            record = known.get(key)
            if record is not None:
                stamp = _unchanged(archive, record, path, stamp, retry_failed)
                if stamp is None:
                    result.unchanged += 1
                    continue
            result.todo.append(Candidate(path, root_key, stamp))
        if root.is_dir():
            inside = str(root) + os.sep
            gone = [
                r.id
                for path, r in known.items()
                if path not in seen and r.status != MISSING and (path.startswith(inside) or path == str(root))
            ]
            archive.retire_files(gone)
            result.removed += len(gone)
    return result


def _unchanged(
    archive: Archive, record: MediaRecord, path: Path, stamp: FileStamp, retry_failed: bool
) -> FileStamp | None:
    """None when the file needs no work; else its stamp (with the content hash if it was computed to decide)."""
    if record.status not in (INDEXED, FAILED) or (record.status == FAILED and retry_failed):
        return stamp
    if record.size == stamp.size and record.mtime == stamp.mtime:
        return None
    if record.size == stamp.size and record.content_hash:
        stamp = replace(stamp, content_hash=content_hash(path))
        if stamp.content_hash == record.content_hash:  # touched, not changed: remember the new mtime
            archive.touch_file(record.id, stamp.mtime)
            return None
    return stamp
