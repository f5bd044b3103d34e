"""Typed media errors: each names the file, the cause, and what the user can do; `code` goes to the database."""

from __future__ import annotations

from pathlib import Path


class MediaError(Exception):
    """A file that could not be probed or decoded. Subclasses set `code` and a default `hint`."""

    code = "media_error"
    hint = "check that the file plays in a media player; re-encode it with ffmpeg if it does not"

    def __init__(self, path: str | Path, reason: str, hint: str | None = None) -> None:
        self.path = str(path)
        self.reason = reason
        if hint is not None:
            self.hint = hint
        super().__init__(f"{self.path}: {reason} ({self.hint})")

    def __reduce__(self) -> tuple:
        # Errors cross process boundaries from the decode workers; keep them picklable with their fields.
        return (type(self), (self.path, self.reason, self.hint))


class FileMissingError(MediaError):
    code = "missing"
    hint = "the file was moved or deleted; it will be dropped from the index on the next run"


class UnreadableFileError(MediaError):
    code = "unreadable"
    hint = "give the indexing user read permission on the file (e.g. chmod a+r)"


class EmptyFileError(MediaError):
    code = "empty"
    hint = "the file has zero bytes; restore it from a backup or delete it"


class NotMediaError(MediaError):
    code = "not_media"
    hint = "the file holds no video or image stream; nothing to index"


class UnsupportedCodecError(MediaError):
    code = "unsupported_codec"
    hint = "install an ffmpeg build with this decoder, or re-encode the file to H.264"


class CorruptMediaError(MediaError):
    code = "corrupt"
    hint = "the file is damaged or truncated; re-copy it from its source or re-encode what plays"


class TooLargeError(MediaError):
    code = "too_large"
    hint = "the frame size is beyond the configured limit; downscale the file with ffmpeg"


class DecodeTimeoutError(MediaError):
    code = "timeout"
    hint = "decoding took longer than the per-file timeout; raise --decode-timeout or re-encode the file"


class DecodeMemoryError(MediaError):
    code = "memory"
    hint = "decoding needed more memory than the worker limit; raise --decode-memory-mb or downscale the file"


class WorkerCrashError(MediaError):
    code = "worker_crash"
    hint = "the decoder crashed on this file; re-encode it with ffmpeg (e.g. to H.264) and index again"
