"""The export cache: one folder per (weights, preprocessing, runtime, precision, runtime version), one compiled
graph per inference path in it, and `record.json` saying what was exported and how far it drifts from torch.

A graph counts only when the record lists it with the sizes and sha256 of its files as written: a half-written,
truncated or edited export is rebuilt, never loaded. Every file is written to a temporary name and renamed into
place, so a crash mid-export leaves the last good cache (or none).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from mplug2.download import sha256_of
from mplug2.model import MPLUG2Retrieval

RECORD = "record.json"
FORMAT = 1  # bump when the graphs' inputs or outputs change: older caches are then rebuilt


def default_cache_root() -> Path:
    """`$MPLUG2_RUNTIME_CACHE`, else ~/.cache/mplug2/runtime (callers with a home of their own pass theirs)."""
    return Path(os.environ.get("MPLUG2_RUNTIME_CACHE", Path.home() / ".cache" / "mplug2" / "runtime")).expanduser()


def weights_digest(model: MPLUG2Retrieval) -> str:
    """Every tensor of the model, the fusion tower and ITM head included (model_fingerprint leaves them out), plus
    the config (whose preprocessing decides what the graphs are fed)."""
    digest = hashlib.sha1(json.dumps(model.config.to_dict(), sort_keys=True).encode())
    digest.update(str(model.with_fusion).encode())
    with torch.no_grad():
        for name, tensor in sorted(model.state_dict().items()):
            flat = tensor.detach().flatten().float().cpu()
            digest.update(name.encode())
            digest.update(flat[:16].numpy().tobytes())
            digest.update(np.float64(flat.double().sum()).tobytes())
    return digest.hexdigest()[:16]


def cache_key(weights: str, runtime: str, precision: str, runtime_version: str) -> str:
    text = json.dumps([FORMAT, weights, runtime, precision, runtime_version])
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, flush it to disk, rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def list_exports(cache_root: Path) -> list[dict]:
    """Every export record under `cache_root` (what `models` shows), each with its folder."""
    records = []
    for path in sorted(Path(cache_root).glob(f"*/{RECORD}")):
        record = ExportCache(path.parent).read_record()
        if record["graphs"]:
            records.append(dict(record, folder=str(path.parent)))
    return records


class ExportCache:
    """One cache folder: the record and the graphs' files."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.record_path = self.folder / RECORD

    def read_record(self) -> dict:
        """The record, or an empty one when missing or unreadable (its graphs are then rebuilt)."""
        try:
            record = json.loads(self.record_path.read_text())
        except (OSError, ValueError):
            return {"graphs": {}}
        if not isinstance(record, dict) or not isinstance(record.get("graphs"), dict):
            return {"graphs": {}}
        return record

    def valid_files(self, graph: str) -> list[Path] | None:
        """The graph's files if the record lists them and each still has the recorded size and sha256."""
        entry = self.read_record()["graphs"].get(graph)
        if not isinstance(entry, dict) or not isinstance(entry.get("files"), dict):
            return None
        paths = []
        for name, (size, sha) in entry["files"].items():
            path = self.folder / name
            if not path.is_file() or path.stat().st_size != size or sha256_of(path) != sha:
                return None
            paths.append(path)
        return paths

    def commit(self, graph: str, files: dict[str, bytes], entry: dict, header: dict) -> None:
        """Write a graph's files, then the record naming them (last: a crash before it leaves the graph unlisted)."""
        for name, data in files.items():
            atomic_write_bytes(self.folder / name, data)
        record = self.read_record()
        record.update(header)
        entry = dict(entry, files={name: [len(data), hashlib.sha256(data).hexdigest()] for name, data in files.items()})
        record["graphs"][graph] = entry
        atomic_write_bytes(self.record_path, (json.dumps(record, indent=1, sort_keys=True) + "\n").encode())
