"""Durable whole-file writes: a file is either its old self or its new self after a kill or a power cut.

The recipe, in one place: write a temporary file beside the target, fsync it, rename it over the target, fsync
the folder (the rename lives in the folder's entry, so without that fsync a power cut can undo it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np


def temporary_path(path: Path) -> Path:
    """The hidden sibling a write goes through (`.NAME.tmp`): writers sweep these away after a crash."""
    return path.with_name(f".{path.name}.tmp")


def fsync_path(path: Path) -> None:
    """Flush a file's or a folder's contents to disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def replace_durably(temporary: Path, path: Path) -> None:
    """Make a finished temporary file (written by anyone: a library, ffmpeg) durable and put it at `path`."""
    fsync_path(temporary)
    os.replace(temporary, path)
    fsync_path(path.parent)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Have `write` fill a temporary file, then put it at `path` durably. Returns `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path(path)
    try:
        write(temporary)
        replace_durably(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda temporary: temporary.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda temporary: temporary.write_text(text))


def atomic_write_numpy(path: str | Path, array: np.ndarray) -> Path:
    def save(temporary: Path) -> None:
        with open(temporary, "wb") as handle:  # a handle, so numpy adds no `.npy` to the temporary name
            np.save(handle, array)

    return atomic_write(path, save)


def atomic_write_json(path: str | Path, content: object, **dumps: object) -> Path:
    return atomic_write_text(path, json.dumps(content, **dumps))  # type: ignore[arg-type]
