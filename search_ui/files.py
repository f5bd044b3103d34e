"""The only way the app reaches a media file: by clip id, through the catalog, and only inside an indexed root.

A parameter from the page (a query string, a widget) never becomes a path. It must parse as a clip id that the
catalog knows; the clip's file must still resolve, symbolic links and `..` included, to a place under one of the
roots the user indexed. Anything else is refused with a message, never served.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from indexer.db.catalog import Catalog
from indexer.db.records import ClipRecord
from indexer.media.encode import ffmpeg_binary


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


# What browsers play natively: these containers with these codecs. Anything else gets an H.264 preview of the clip.
BROWSER_CONTAINERS = (".mp4", ".m4v", ".webm", ".mov")
BROWSER_CODECS = ("h264", "vp8", "vp9", "av1")


def playable_video(catalog: Catalog, record: ClipRecord, path: Path, preview_dir: Path) -> tuple[Path, float, float]:
    """(file, start, end) for the browser: the original when it can play it, else an H.264 cut of the clip made
    once with ffmpeg and kept in `preview_dir` (its times then start at 0)."""
    media = catalog.media_by_path(record.path)
    codec = (media.codec or "").lower() if media else ""
    if path.suffix.lower() in BROWSER_CONTAINERS and codec in BROWSER_CODECS:
        return path, record.start, record.end
    preview = preview_dir / f"clip-{record.id}-{int(record.start * 1000)}-{int(record.end * 1000)}.mp4"
    if not preview.is_file():
        preview_dir.mkdir(parents=True, exist_ok=True)
        partial = preview.with_suffix(".partial.mp4")
        command = [ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-y", "-ss", f"{record.start:.3f}"]
        command += ["-to", f"{record.end:.3f}", "-i", str(path), "-map", "0:v:0", "-c:v", "libx264"]
        command += ["-preset", "veryfast", "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(partial)]
        try:
            subprocess.run(command, check=True, capture_output=True, timeout=300)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
            partial.unlink(missing_ok=True)
            raise NotServable(f"{path.name} could not be converted for the browser ({error})") from None
        partial.replace(preview)
    return preview, 0.0, record.end - record.start
