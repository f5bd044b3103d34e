"""What the app may open: a clip by id, only inside an indexed root, in a form the browser can play.

A parameter from the page (a query string, a widget) never becomes a path. It must parse as a clip id that the
archive knows as searchable; the clip's file must still resolve, symbolic links and `..` included, to a place under
one of the roots the user indexed. Anything else is refused with a message, never served.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from indexer.media.encode import EncoderUnavailableError, cut_for_browser
from indexer.store.archive import Archive
from indexer.store.db.records import ClipRecord

# What browsers play natively: these containers with these codecs. Anything else gets an H.264 preview of the clip.
BROWSER_CONTAINERS = (".mp4", ".m4v", ".webm", ".mov")
BROWSER_CODECS = ("h264", "vp8", "vp9", "av1")


class NotServable(LookupError):
    """A request for something the app will not show; the message says why, in words for the page."""


@dataclass(frozen=True)
class OpenClip:
    """A searchable clip and the real path of its file, checked to lie under an indexed root."""

    record: ClipRecord
    path: Path


@dataclass(frozen=True)
class Playable:
    """A file the browser can play, and the clip's times in it."""

    path: Path
    start: float
    end: float


def parse_clip_id(raw: object) -> int:
    text = str(raw).strip()
    # ASCII digits only: str.isdigit() also accepts '³' or '١', which int() refuses or reads as another number.
    if not (text.isascii() and text.isdigit()) or len(text) > 18:  # 18 digits fit a signed 64-bit integer
        raise NotServable(f"{text[:80]!r} is not a clip id")
    return int(text)


def open_clip(archive: Archive, raw_clip_id: object) -> OpenClip:
    clip_id = parse_clip_id(raw_clip_id)
    records = archive.clips([clip_id])
    if not records:
        raise NotServable(f"no searchable clip has id {clip_id}")
    record = records[0]
    if not archive.is_under_root(record.path):
        raise NotServable(f"clip {clip_id}'s file is outside the indexed folders; it is not served")
    path = Path(record.path).resolve()
    if not path.is_file():
        raise NotServable(f"{record.path} is gone; run the indexer again to retire it")
    return OpenClip(record, path)


def playable(archive: Archive, clip: OpenClip, preview_dir: Path) -> Playable:
    """The original file when the browser can play it, else an H.264 cut of the clip made once and kept in
    `preview_dir` (its times then start at 0)."""
    record, path = clip.record, clip.path
    media = archive.media(record.path)
    codec = (media.codec or "").lower() if media else ""
    if path.suffix.lower() in BROWSER_CONTAINERS and codec in BROWSER_CODECS:
        return Playable(path, record.start, record.end)
    preview = preview_dir / f"clip-{record.id}-{int(record.start * 1000)}-{int(record.end * 1000)}.mp4"
    if not preview.is_file():
        try:
            cut_for_browser(path, record.start, record.end, preview)
        except EncoderUnavailableError as error:
            raise NotServable(f"{path.name} could not be converted for the browser ({error})") from None
    return Playable(preview, 0.0, record.end - record.start)
