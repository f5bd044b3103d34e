"""An on-disk cache of item features for evaluation: ITC vectors and visual tokens, one row per item, resumable.

Keyed by (model, preprocessing, items): a different model or frame count never reads another's cache. Rows are
written as batches finish and `done` is saved after them, so an interrupted run (Ctrl-C or kill -9) keeps what it
had embedded and the next run embeds only the rest.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from indexer.atomic import atomic_write_numpy


class ItemFeatureCache:
    def __init__(
        self, folder: Path, key: dict, count: int, embed_dim: int, token_shape: tuple[int, int] | None
    ) -> None:
        digest = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
        self.folder = folder / digest
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "key.json").write_text(json.dumps(key, indent=1, sort_keys=True, default=str))
        self.itc = _memmap(self.folder / "itc.f32", np.float32, (count, embed_dim))
        self.tokens = _memmap(self.folder / "tokens.f16", np.float16, (count, *token_shape)) if token_shape else None
        self._done_path = self.folder / "done.npy"
        self.done = np.load(self._done_path) if self._done_path.exists() else np.zeros(count, dtype=np.int8)
        self.errors_path = self.folder / "errors.jsonl"

    def write(self, rows: list[int], itc: np.ndarray, tokens: np.ndarray | None) -> None:
        self.itc[rows] = itc
        if self.tokens is not None and tokens is not None:
            self.tokens[rows] = tokens.astype(np.float16)
        self.done[rows] = 1

    def fail(self, row: int, message: str) -> None:
        self.done[row] = -1
        with open(self.errors_path, "a") as handle:
            handle.write(json.dumps({"row": row, "error": message}) + "\n")

    def errors(self) -> dict[int, str]:
        if not self.errors_path.exists():
            return {}
        rows = [json.loads(line) for line in self.errors_path.read_text().splitlines() if line.strip()]
        return {row["row"]: row["error"] for row in rows if self.done[row["row"]] == -1}

    def flush(self) -> None:
        """Make everything written so far durable, data before the `done` marks that vouch for it."""
        self.itc.flush()
        if self.tokens is not None:
            self.tokens.flush()
        atomic_write_numpy(self._done_path, self.done)


def _memmap(path: Path, dtype: type, shape: tuple[int, ...]) -> np.memmap:
    return np.memmap(path, dtype=dtype, mode="r+" if path.exists() else "w+", shape=shape)
