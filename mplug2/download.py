"""The one place that downloads weights, and only when the user runs `mplug2-search fetch-checkpoint`."""

from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path

from mplug2.pretrained import KNOWN_CHECKPOINTS


def download_checkpoint(name: str, out_dir: str | Path, url: str | None = None) -> Path:
    """Fetch the known checkpoint `name` into `out_dir` (atomically), checking its sha256 when known."""
    if name not in KNOWN_CHECKPOINTS:
        raise KeyError(f"unknown checkpoint {name!r}; known: {', '.join(sorted(KNOWN_CHECKPOINTS))}")
    cfg = KNOWN_CHECKPOINTS[name]
    source = url or cfg.url
    if not source:
        raise ValueError(f"{name} has no download address (it ships with the project)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / cfg.file
    partial = target.with_name(target.name + ".partial")
    digest = hashlib.sha256()
    with urllib.request.urlopen(source, timeout=60) as response, open(partial, "wb") as handle:
        while chunk := response.read(1 << 20):
            digest.update(chunk)
            handle.write(chunk)
    if cfg.sha256 and digest.hexdigest() != cfg.sha256:
        partial.unlink()
        raise ValueError(f"{source}: sha256 {digest.hexdigest()} is not the expected {cfg.sha256}")
    os.replace(partial, target)
    return target
