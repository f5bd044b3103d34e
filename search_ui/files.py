"""The only way the app reaches a media file: by clip id, through the catalog, and only inside an indexed root.

A parameter from the page (a query string, a widget) never becomes a path. It must parse as a clip id that the
catalog knows; the clip's file must still resolve, symbolic links and `..` included, to a place under one of the
roots the user indexed. Anything else is refused with a message, never served.
"""

from __future__ import annotations

from pathlib import Path

from indexer.db.catalog import Catalog
from indexer.db.records import ClipRecord


class NotServable(LookupError):
    """A request for something the app will not show; the message says why, in words for the page."""


def parse_clip_id(raw: object) -> int:
    text = str(raw).strip()
    if not text.isdigit() or len(text) > 18:  # 18 digits stay inside a signed 64-bit database integer
        raise NotServable(f"{text[:80]!r} is not a clip id")
    return int(text)


def servable_clip(catalog: Catalog, raw_clip_id: object) -> tuple[ClipRecord, Path]:
    """The ready clip with this id and the real path of its file, checked to lie under an indexed root."""
    clip_id = parse_clip_id(raw_clip_id)
    records = catalog.clips([clip_id])
    if not records:
        raise NotServable(f"no searchable clip has id {clip_id}")
    record = records[0]
    if not catalog.is_under_root(record.path):
        raise NotServable(f"clip {clip_id}'s file is outside the indexed folders; it is not served")
    path = Path(record.path).resolve()
    if not path.is_file():
        raise NotServable(f"{record.path} is gone; run the indexer again to retire it")
    return record, path
