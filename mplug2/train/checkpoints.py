"""Training checkpoints, written so that a kill at any moment leaves the previous one whole (and on disk)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from mplug2.runtime.cache import atomic_write_bytes

# Where a training stage keeps its checkpoint, under its output folder.
CHECKPOINT = Path("checkpoints") / "last.pt"


def write_checkpoint(state: dict[str, Any], path: Path) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def read_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict[str, Any] | None:
    """The state saved at `path`, or None where there is none yet."""
    if not path.is_file():
        return None
    return torch.load(path, map_location=device, weights_only=True)
