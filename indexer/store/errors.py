"""The store layer's errors a person can act on: `ArchiveError`, and `DiskFullError` with the one-line advice a
full disk needs (which folder, how much is free, what to do). `disk_full` tells a full disk from other failures,
whichever store hit it (a feature-store shard, the FAISS file, SQLite or a PostgreSQL server)."""

from __future__ import annotations

import contextlib
import errno
import shutil
from collections.abc import Iterator
from pathlib import Path

from indexer.settings import Settings


class ArchiveError(RuntimeError):
    """The archive cannot be used as asked; the message says what to do."""


class DiskFullError(ArchiveError):
    """A write found no space left: the run stopped; everything committed before it is kept."""


_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
_FULL_MESSAGES = ("database or disk is full", "no space left on device", "disk quota exceeded")
_PG_DISK_FULL = "53100"


def disk_full(error: BaseException) -> bool:
    """Whether `error` (or the database error it wraps) says the disk is full."""
    for candidate in (error, getattr(error, "orig", None), error.__cause__):
        if candidate is None:
            continue
        if isinstance(candidate, OSError) and candidate.errno in _FULL_ERRNOS:
            return True
        if getattr(candidate, "sqlstate", None) == _PG_DISK_FULL:
            return True
        if any(text in str(candidate).lower() for text in _FULL_MESSAGES):
            return True
    return False


def _megabytes(count: int) -> str:
    return f"{count / (1 << 20):.1f} MB"


def disk_full_error(error: BaseException, folder: Path, db_url: str) -> DiskFullError:
    """One line for a full disk: the folder it hit (the file's own, else the index folder or the SQLite file's),
    the space left there and what to do."""
    filename = getattr(error, "filename", None)
    if filename:
        folder = Path(filename).parent
    elif db_url.startswith("sqlite:///") and getattr(error, "orig", None) is not None:
        folder = Path(db_url.removeprefix("sqlite:///")).parent
    advice = (
        "the run stopped and everything indexed so far is kept. Free some space and run `mplug2-search index` again "
        "to resume, or index into another --index-dir, or keep lighter re-rank features (--feature-mode pooled or none)"
    )
    if getattr(error, "orig", None) is not None and not db_url.startswith("sqlite"):
        return DiskFullError(f"the database server's disk is full ({str(error.orig).strip()[:120]}): {advice}")
    where = folder
    while not where.exists() and where != where.parent:
        where = where.parent
    return DiskFullError(f"disk full at {folder} ({_megabytes(shutil.disk_usage(where).free)} free): {advice}")


@contextlib.contextmanager
def stops_when_full(settings: Settings) -> Iterator[None]:
    """Turn a full disk, met by any store or by the database, into `DiskFullError` with its advice."""
    try:
        yield
    except Exception as error:
        if not disk_full(error):
            raise
        raise disk_full_error(error, settings.index_dir, settings.db_url) from None
