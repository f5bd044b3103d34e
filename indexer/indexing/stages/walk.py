"""Walk and plan: which files under the roots need (re)indexing, and which are gone.

A file is a candidate when its first bytes carry a media signature or its name a media extension (so a thousand
README files cost no ffprobe, yet a text file named .mp4 is caught and reported). Each candidate is stat'ed once
here; a file whose size matches the catalog but whose mtime does not is hashed, at most once per run (the hash
travels with the candidate to the commit).

Encoded clips are the expensive asset, so a file not found where it was is sorted out before anything is retired:
- its content (same size, then same hash) is found at a new path: moved; its row follows it, nothing encoded. A new
  file with the content of a stored one that is still there is a copy: it gets the original's clips;
- its folder is gone, or is an empty folder (an unmounted disk or share leaves its mount point empty): `offline`,
  kept with its vectors but not searchable, and back as it was once the folder is (`prune_missing` retires them);
- else it was deleted: retired, as always.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from indexer.store.archive import Archive
from indexer.store.db.records import FAILED, INDEXED, MISSING, OFFLINE, FileStamp, MediaRecord

log = logging.getLogger(__name__)

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
    offline: int = 0  # files whose folder is gone: kept, not searchable
    reused: int = 0  # files found again (folder back, moved, copied): their clips reused, nothing encoded
    clips_reused: int = 0


def plan(archive: Archive, roots: list[Path], retry_failed: bool = False, prune_missing: bool = False) -> Plan:
    """Walk the roots; bring back, move or copy stored files; set aside or retire the vanished; return the files
    to (re)index."""
    result = Plan([])
    skip = {archive.index_dir.resolve()}
    absent: list[MediaRecord] = []
    for root in roots:
        if not root.exists():  # a folder the archive knows that is not there (existing_roots let only those by)
            absent += [r for r in archive.files_inside(str(root)) if r.status != MISSING]
            continue
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
                    if record.status == OFFLINE:  # its folder is back: searchable again as it was
                        result.clips_reused += archive.reuse_file(record, key, root_key, _stamp(stat), move=True)
                        result.reused += 1
                    else:
                        result.unchanged += 1
                    continue
            result.todo.append(Candidate(path, root_key, stamp))
        if root.is_dir():
            inside = str(root) + os.sep
            absent += [
                r
                for path, r in known.items()
                if path not in seen and r.status != MISSING and (path.startswith(inside) or path == str(root))
            ]
    result.todo = _reuse_stored(archive, result, absent)
    _set_aside(archive, result, absent, prune_missing)
    archive.refresh()  # files back, moved or offline: the loaded index follows
    return result


def _stamp(stat: os.stat_result) -> FileStamp:
    return FileStamp(stat.st_size, stat.st_mtime)


def _reuse_stored(archive: Archive, result: Plan, absent: list[MediaRecord]) -> list[Candidate]:
    """Candidates with the content of a stored file reuse its clips (moved: the row follows; copied: the clips are
    copied); returns the candidates left to decode. Only a candidate of a stored file's size is hashed here (the
    hash travels on to the commit)."""
    sizes = archive.stored_sizes()
    left = []
    for candidate in result.todo:
        if candidate.stamp.size == 0 or candidate.stamp.size not in sizes:
            left.append(candidate)
            continue
        try:
            stamp = candidate.hashed()
        except OSError:  # unreadable: the decode stage records why
            left.append(candidate)
            continue
        path = str(candidate.path)
        source = next((r for r in archive.files_with_hash(stamp.content_hash) if r.path != path), None)
        if source is None:
            left.append(replace(candidate, stamp=stamp))
            continue
        move = source.status == OFFLINE or not os.path.exists(source.path)
        result.clips_reused += archive.reuse_file(source, path, candidate.root, stamp, move)
        result.reused += 1
        if move:
            absent[:] = [r for r in absent if r.id != source.id]
    return left


def _set_aside(archive: Archive, result: Plan, absent: list[MediaRecord], prune_missing: bool) -> None:
    """Files not found: offline when their folder is gone (or an empty mount point), else retired. With
    `prune_missing`, offline ones are retired too."""
    folder_gone: dict[str, bool] = {}
    offline, retired = [], []
    for record in absent:
        folder = os.path.dirname(record.path)
        if folder not in folder_gone:
            folder_gone[folder] = not os.path.isdir(folder) or next(os.scandir(folder), None) is None
        keep = folder_gone[folder] and record.status in (INDEXED, OFFLINE) and not prune_missing
        (offline if keep else retired).append(record)
    archive.set_offline([r.id for r in offline if r.status != OFFLINE])
    archive.retire_files([r.id for r in retired])
    result.offline, result.removed = len(offline), len(retired)
    if offline:
        folders = sorted({os.path.dirname(r.path) for r in offline})
        log.warning(
            "%d files are offline, their folder gone or empty (an unmounted disk or share?), e.g. %s: kept for its "
            "return; `mplug2-search index --prune-missing` forgets them",
            len(offline),
            folders[0],
        )


def _unchanged(
    archive: Archive, record: MediaRecord, path: Path, stamp: FileStamp, retry_failed: bool
) -> FileStamp | None:
    """None when the file needs no work; else its stamp (with the content hash if it was computed to decide)."""
    if record.status not in (INDEXED, OFFLINE, FAILED) or (record.status == FAILED and retry_failed):
        return stamp
    if record.size == stamp.size and record.mtime == stamp.mtime:
        return None
    if record.size == stamp.size and record.content_hash:
        stamp = replace(stamp, content_hash=content_hash(path))
        if stamp.content_hash == record.content_hash:  # touched, not changed: remember the new mtime
            if record.status != OFFLINE:  # (an offline file gets its new stamp as it comes back)
                archive.touch_file(record.id, stamp.mtime)
            return None
    return stamp
