"""The feature store: each clip's ITC vector and the visual tokens the fusion encoder re-ranks with, on disk.

Layout: append-only shards `shards/shard-NNNNNN.safetensors`, each written whole to a temporary file, fsynced and
renamed into place, holding `ids` [N], `itc` [N, E] float32, `form` [N] (what tokens were kept), `offsets` [N+1] and
`tokens` [sum, hidden] float16. A crash loses at most the shard being written. Readers memory-map shards; an index
id -> (shard, row) is built at open and extended by `refresh()` as a running index writes new shards.

Token forms, chosen by `mode` and kept per clip:
- `full`: every visual token `[1 + T*G*G, hidden]`;
- `pooled`: the CLS token plus each frame's patch grid average-pooled 2x2 (`[1 + T*ceil(G/2)^2, hidden]`): frame
  order survives, 4x smaller;
- `none`: no tokens; the search engine recomputes them from the file when it re-ranks.
Under `budget_bytes`, a write that would overflow the budget downgrades (full -> pooled -> none) and says so once.
The store never judges which ids are valid: the database does. `compact(keep)` gives back the space of the rest.

Compaction rewrites the shards that hold dead rows, a group at a time, into one new shard each, crash-safe at any
moment: it first writes a journal (`compaction.json`: the new shard's name and the old ones it replaces), then the
new shard (atomically), then deletes the old ones and the journal. While the journal names a new shard that exists,
its old shards are superseded: readers skip them and the next writer deletes them. A journal whose new shard never
appeared is void. So a kill leaves every live row in exactly one shard that readers use.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from indexer.atomic import atomic_write, atomic_write_json, atomic_write_numpy, fsync_path

log = logging.getLogger(__name__)

MODES = ("none", "pooled", "full")  # index = the `form` code stored per clip
_SHARD = re.compile(r"^shard-(\d{6})\.safetensors$")
_JOURNAL = "compaction.json"
COMPACT_GROUP_BYTES = 64 << 20  # live bytes per rewritten shard: bounds the memory a compaction holds


def pool_tokens(tokens: np.ndarray, grid: int) -> np.ndarray:
    """[1 + T*G*G, H] → [1 + T*ceil(G/2)^2, H]: CLS kept, each frame's patch grid averaged over 2x2 cells."""
    cls, patches = tokens[:1], tokens[1:]
    frames = len(patches) // (grid * grid)
    patches = patches.reshape(frames, grid, grid, -1)  # [T, G, G, H]
    if grid % 2:  # an odd grid: repeat the last row and column so every cell has 2x2 members
        patches = np.concatenate([patches, patches[:, -1:]], axis=1)
        patches = np.concatenate([patches, patches[:, :, -1:]], axis=2)
    half = patches.shape[1] // 2
    pooled = patches.reshape(frames, half, 2, half, 2, -1).mean(axis=(2, 4))  # [T, G/2, G/2, H]
    return np.concatenate([cls, pooled.reshape(frames * half * half, -1)]).astype(tokens.dtype)


@dataclass
class _Location:
    shard: str
    row: int


class FeatureStore:
    def __init__(self, folder: str | Path, mode: str = "full", budget_bytes: int | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"feature mode must be one of {MODES}, not {mode!r}")
        self.folder = Path(folder)
        self.shards_dir = self.folder / "shards"
        self.shards_dir.mkdir(parents=True, exist_ok=True)
        self.mode = mode
        self.budget_bytes = budget_bytes
        self._locations: dict[int, _Location] = {}
        self._handles: dict[str, object] = {}
        self._shard_ids: dict[str, np.ndarray] = {}
        self._removed = self._load_removed()
        self._downgrade_warned = False
        self.refresh()

    # reading

    def refresh(self) -> int:
        """Pick up shards written since the last look (by this or another process), and let go of shards deleted
        or superseded by a compaction. Returns how many shards were new."""
        present = {path.name for path in self.shards_dir.iterdir() if _SHARD.match(path.name)}
        live = present - self._superseded(present)
        if set(self._shard_ids) - live:  # a compaction replaced shards: map the rows afresh
            self._locations, self._handles, self._shard_ids = {}, {}, {}
        new = 0
        for name in sorted(live - set(self._shard_ids)):
            try:
                handle = safe_open(str(self.shards_dir / name), framework="np")
            except FileNotFoundError:  # deleted by a compaction since the listing: its rows are elsewhere
                continue
            ids = handle.get_tensor("ids")
            self._handles[name] = handle
            self._shard_ids[name] = ids
            for row, clip_id in enumerate(ids.tolist()):
                self._locations[clip_id] = _Location(name, row)
            new += 1
        self._removed = self._load_removed()
        return new

    def _journal(self) -> dict | None:
        try:
            return json.loads((self.folder / _JOURNAL).read_text())
        except (OSError, ValueError):
            return None

    def _superseded(self, present: set[str]) -> set[str]:
        """Old shards of a compaction whose new shard was written but whose clean-up a kill interrupted."""
        journal = self._journal()
        return set(journal["old"]) if journal and journal["new"] in present else set()

    def ids(self) -> np.ndarray:
        live = [clip_id for clip_id in self._locations if clip_id not in self._removed]
        return np.array(sorted(live), dtype=np.int64)

    def __contains__(self, clip_id: int) -> bool:
        return int(clip_id) in self._locations and int(clip_id) not in self._removed

    def itc(self, ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(ids, ITC vectors [N, E]) for `ids` (those stored), or for every live clip."""
        wanted = self.ids() if ids is None else np.array([i for i in np.asarray(ids).tolist() if i in self], np.int64)
        if len(wanted) == 0:
            return wanted, np.zeros((0, self._embed_dim()), np.float32)
        by_shard: dict[str, list[tuple[int, int]]] = {}
        for position, clip_id in enumerate(wanted.tolist()):
            location = self._locations[clip_id]
            by_shard.setdefault(location.shard, []).append((position, location.row))
        vectors = np.zeros((len(wanted), self._embed_dim()), np.float32)
        for shard, pairs in by_shard.items():
            positions, rows = zip(*pairs, strict=True)
            vectors[list(positions)] = self._handles[shard].get_slice("itc")[:][list(rows)]
        return wanted, vectors

    def _embed_dim(self) -> int:
        for handle in self._handles.values():
            return handle.get_slice("itc").get_shape()[1]
        return 0

    def tokens(self, ids: np.ndarray | list[int]) -> list[np.ndarray | None]:
        """Each clip's stored tokens (float32), or None where none are kept (form `none`, or not stored)."""
        result: list[np.ndarray | None] = []
        for clip_id in np.asarray(ids).tolist():
            if clip_id not in self:
                result.append(None)
                continue
            location = self._locations[clip_id]
            handle = self._handles[location.shard]
            offsets = handle.get_slice("offsets")[location.row : location.row + 2]
            start, end = int(offsets[0]), int(offsets[1])
            result.append(handle.get_slice("tokens")[start:end].astype(np.float32) if end > start else None)
        return result

    def forms(self, ids: np.ndarray | list[int]) -> list[str | None]:
        forms = []
        for clip_id in np.asarray(ids).tolist():
            if clip_id not in self:
                forms.append(None)
                continue
            location = self._locations[clip_id]
            forms.append(
                MODES[int(self._handles[location.shard].get_slice("form")[location.row : location.row + 1][0])]
            )
        return forms

    # writing

    def size_bytes(self) -> int:
        return sum(path.stat().st_size for path in self.shards_dir.glob("shard-*.safetensors"))

    def _form_for(self, projected_full: int, projected_pooled: int) -> str:
        if self.budget_bytes is None or self.mode == "none":
            return self.mode
        used = self.size_bytes()
        candidates = ("full", "pooled", "none") if self.mode == "full" else ("pooled", "none")
        for form in candidates:
            extra = {"full": projected_full, "pooled": projected_pooled, "none": 0}[form]
            if used + extra <= self.budget_bytes or form == "none":
                if form != self.mode and not self._downgrade_warned:
                    log.warning(
                        "feature store at %d of %d bytes: keeping %s re-rank features for new clips",
                        used,
                        self.budget_bytes,
                        form,
                    )
                    self._downgrade_warned = True
                return form
        return "none"

    def write(self, ids: np.ndarray, itc: np.ndarray, tokens: list[np.ndarray] | None, grid: int) -> str:
        """Store a batch durably as one new shard; returns its name. `tokens`: each clip's full visual tokens."""
        ids = np.asarray(ids, dtype=np.int64)
        if tokens is not None and len(tokens) != len(ids):
            raise ValueError("one token array per clip, please")
        full_bytes = sum(t.shape[0] * t.shape[1] * 2 for t in tokens) if tokens is not None else 0
        base_bytes = itc.size * 4 + len(ids) * 17 + 512  # vectors, ids/offsets/forms, header
        form = self._form_for(base_bytes + full_bytes, base_bytes + full_bytes // 3) if tokens is not None else "none"
        kept = [] if form == "none" else [t if form == "full" else pool_tokens(t, grid) for t in tokens]  # type: ignore[union-attr]
        forms = np.full(len(ids), MODES.index(form), dtype=np.int8)
        return self._write_shard(ids, itc, forms, kept or [None] * len(ids))

    def copy(self, source_ids: np.ndarray, new_ids: np.ndarray) -> str:
        """Store the source clips' vectors and tokens (as kept) again under new ids, one new shard: a copied file
        reuses its original's work. Every source id must be stored."""
        source, itc = self.itc(source_ids)
        if len(source) != len(source_ids):
            raise ValueError(f"{len(source_ids) - len(source)} of the clips to copy have no stored features")
        forms = np.array([MODES.index(form or "none") for form in self.forms(source)], dtype=np.int8)
        return self._write_shard(np.asarray(new_ids, np.int64), itc, forms, self.tokens(source))

    def _write_shard(
        self, ids: np.ndarray, itc: np.ndarray, forms: np.ndarray, tokens: list[np.ndarray | None], name: str = ""
    ) -> str:
        """One durable shard of these rows (each clip's tokens as kept, None for none); returns its name."""
        lengths = [0 if t is None else len(t) for t in tokens]
        stacked = [t for t in tokens if t is not None]
        hidden = stacked[0].shape[1] if stacked else 1
        tensors = {
            "ids": np.asarray(ids, np.int64),
            "itc": np.ascontiguousarray(itc, dtype=np.float32),
            "form": forms,
            "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            "tokens": np.concatenate(stacked).astype(np.float16) if stacked else np.zeros((0, hidden), np.float16),
        }
        name = name or self._new_name()
        atomic_write(self.shards_dir / name, lambda temporary: save_file(tensors, str(temporary)))
        self.refresh()
        return name

    def _new_name(self) -> str:
        return f"shard-{self._next_number():06d}.safetensors"

    def _next_number(self) -> int:
        numbers = [int(m.group(1)) for p in self.shards_dir.iterdir() if (m := _SHARD.match(p.name))]
        return max(numbers, default=-1) + 1

    def remove(self, ids: np.ndarray | list[int]) -> None:
        """Forget these clips (a tombstone list, rewritten atomically; `compact` reclaims the space)."""
        self._removed |= {int(i) for i in np.asarray(ids).tolist()}
        atomic_write_numpy(self.folder / "removed.npy", np.array(sorted(self._removed), dtype=np.int64))

    def _load_removed(self) -> set[int]:
        path = self.folder / "removed.npy"
        return set(np.load(path).tolist()) if path.exists() else set()

    def _shard_bytes(self) -> dict[str, int]:
        return {name: (self.shards_dir / name).stat().st_size for name in self._shard_ids}

    def dead_share(self, keep: np.ndarray) -> float:
        """The share of the shards' bytes held by rows outside `keep` (or removed), each row weighed as an equal
        part of its shard."""
        live = np.setdiff1d(np.asarray(keep, np.int64), np.fromiter(self._removed, np.int64))
        sizes = self._shard_bytes()
        dead = sum(
            sizes[name] * np.count_nonzero(~np.isin(ids, live)) / max(len(ids), 1)
            for name, ids in self._shard_ids.items()
        )
        return dead / max(sum(sizes.values()), 1)

    def compact(self, keep: np.ndarray, group_bytes: int | None = None) -> int:
        """Rewrite every shard holding rows outside `keep` (or removed), keeping only the others; the old shards
        go, journaled (module docstring). Returns how many rows were dropped."""
        self.finish_compaction()
        group_bytes = group_bytes or COMPACT_GROUP_BYTES
        keep_set = set(np.asarray(keep).tolist()) - self._removed
        sizes = self._shard_bytes()
        groups: list[tuple[list[str], list[int]]] = []
        dropped, group_size = 0, 0
        for name in sorted(self._shard_ids):
            ids = self._shard_ids[name].tolist()
            live = [i for i in ids if i in keep_set and self._locations[i].shard == name]
            if len(live) == len(ids):
                continue
            dropped += len(ids) - len(live)
            if not groups or group_size >= group_bytes:
                groups.append(([], []))
                group_size = 0
            groups[-1][0].append(name)
            groups[-1][1].extend(live)
            group_size += sizes[name] * len(live) // max(len(ids), 1)
        for old, live in groups:
            self._rewrite(old, np.array(sorted(live), np.int64))
        if groups:
            stored = set(self._locations)
            atomic_write_numpy(self.folder / "removed.npy", np.array(sorted(self._removed & stored), np.int64))
            self._removed = self._load_removed()
        return dropped

    def _rewrite(self, old: list[str], live: np.ndarray) -> None:
        """Replace the shards `old` by one holding only `live` of their rows (or none), journaled."""
        name = self._new_name()
        atomic_write_json(self.folder / _JOURNAL, {"new": name, "old": old})
        if len(live):
            ids, itc = self.itc(live)
            forms = np.array([MODES.index(form or "none") for form in self.forms(ids)], dtype=np.int8)
            self._write_shard(ids, itc, forms, self.tokens(ids), name)
        else:  # nothing left of them: an empty shard still marks the old ones superseded
            self._write_shard(live, np.zeros((0, self._embed_dim()), np.float32), np.zeros(0, np.int8), [], name)
        self.finish_compaction()

    def finish_compaction(self) -> None:
        """Delete the shards a journaled compaction superseded, then the journal (a void one too). Writers only."""
        journal = self._journal()
        if journal is None:
            return
        if (self.shards_dir / journal["new"]).exists():
            for name in journal["old"]:
                (self.shards_dir / name).unlink(missing_ok=True)
            fsync_path(self.shards_dir)
        os.unlink(self.folder / _JOURNAL)
        fsync_path(self.folder)
        self.refresh()

    def cleanup_temporary(self) -> None:
        """Remove half-written shards a crashed writer left behind (writers only; readers never delete)."""
        for path in self.shards_dir.glob(".*.tmp"):
            path.unlink(missing_ok=True)

    def stats(self) -> dict:
        ids = self.ids()
        forms = self.forms(ids)
        return {
            "clips": len(ids),
            "bytes": self.size_bytes(),
            "mode": self.mode,
            "by_form": {form: forms.count(form) for form in MODES if forms.count(form)},
            "bytes_per_clip": self.size_bytes() / max(len(ids), 1),
        }

    def verify(self) -> list[str]:
        """Problems found: unreadable shards, ids stored twice."""
        problems = []
        seen: dict[int, str] = {}
        present = {path.name for path in self.shards_dir.glob("shard-*.safetensors")}
        superseded = self._superseded(present)
        for path in sorted(self.shards_dir / name for name in present - superseded):
            try:
                with safe_open(str(path), framework="np") as handle:
                    ids = handle.get_tensor("ids")
                    if handle.get_slice("itc").get_shape()[0] != len(ids):
                        problems.append(f"{path.name}: {len(ids)} ids but a different number of vectors")
            except Exception as error:  # a damaged file of any kind is a finding, not a crash of verify
                problems.append(f"{path.name}: unreadable ({error})")
                continue
            for clip_id in ids.tolist():
                if clip_id in seen:
                    problems.append(f"clip {clip_id} stored in both {seen[clip_id]} and {path.name}")
                seen[clip_id] = path.name
        return problems
