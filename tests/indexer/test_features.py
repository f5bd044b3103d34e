"""The feature store: round trips in each mode, pooling by hand, the disk budget, compaction, kills mid-write."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from indexer.store.features import FeatureStore, pool_tokens

GRID, FRAMES, HIDDEN = 4, 2, 8


def clip_tokens(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((1 + FRAMES * GRID * GRID, HIDDEN)).astype(np.float32) for _ in range(n)]


def test_pooling_by_hand() -> None:
    tokens = np.zeros((1 + 2 * 16, 1), np.float32)
    tokens[0] = 7.0  # CLS
    tokens[1:17, 0] = np.arange(16)  # frame 0: a 4x4 grid of 0..15
    tokens[17:, 0] = 100.0  # frame 1
    pooled = pool_tokens(tokens, 4)
    assert pooled.shape == (1 + 2 * 4, 1)
    assert pooled[0, 0] == 7.0
    assert pooled[1:5, 0].tolist() == [2.5, 4.5, 10.5, 12.5]  # mean of (0,1,4,5), (2,3,6,7), ...
    assert (pooled[5:, 0] == 100.0).all()
    odd = pool_tokens(np.ones((1 + 9, 3), np.float32), 3)  # a 3x3 grid pools to 2x2 (edges repeated)
    assert odd.shape == (5, 3)


@pytest.mark.parametrize("mode", ["full", "pooled", "none"])
def test_round_trip(tmp_path: Path, mode: str) -> None:
    store = FeatureStore(tmp_path, mode)
    tokens = clip_tokens(3)
    itc = np.random.default_rng(1).standard_normal((3, 16)).astype(np.float32)
    store.write(np.array([10, 11, 12]), itc, tokens, GRID)
    reopened = FeatureStore(tmp_path, mode)
    ids, vectors = reopened.itc()
    assert ids.tolist() == [10, 11, 12] and np.array_equal(vectors, itc)
    got = reopened.tokens([12, 99])
    assert got[1] is None
    if mode == "none":
        assert got[0] is None
    else:
        expected = tokens[2] if mode == "full" else pool_tokens(tokens[2], GRID)
        assert got[0].shape == expected.shape and np.allclose(got[0], expected, atol=2e-3)  # stored as float16
    assert reopened.forms([10]) == [mode]


def test_budget_downgrades_new_writes(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path, "full", budget_bytes=2_700)  # a full shard here is ~930 bytes, a pooled ~550
    for batch in range(4):
        store.write(np.array([batch]), np.ones((1, 16), np.float32), clip_tokens(1, batch), GRID)
    assert store.forms([0, 1, 2, 3]) == ["full", "full", "pooled", "none"]
    last = max((tmp_path / "shards").glob("shard-*")).stat().st_size
    assert store.size_bytes() - last <= 2_700, "only the tokens-free shard (ITC vectors are always kept) overruns"
    assert store.stats()["by_form"] == {"none": 1, "pooled": 1, "full": 2}


def test_removal_and_compaction(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path, "full")
    store.write(np.array([1, 2, 3]), np.eye(3, 16, dtype=np.float32), clip_tokens(3), GRID)
    store.write(np.array([4, 5]), np.eye(2, 16, dtype=np.float32), clip_tokens(2, 1), GRID)
    store.remove([2])
    assert store.ids().tolist() == [1, 3, 4, 5] and 2 not in store
    assert store.compact(np.array([1, 3, 4])) == 2  # 2 removed, 5 not valid (an orphan)
    again = FeatureStore(tmp_path, "full")
    assert again.ids().tolist() == [1, 3, 4]
    assert len(list((tmp_path / "shards").glob("shard-*"))) == 1
    assert np.allclose(again.tokens([4])[0], clip_tokens(2, 1)[0], atol=2e-3)
    assert again.verify() == []


WRITER = """
import sys, numpy as np
from indexer.store.features import FeatureStore
store = FeatureStore(sys.argv[1], "full")
for n in range(10_000):
    tokens = [np.full((1 + 8 * 49, 256), n, np.float32) for _ in range(16)]
    store.write(np.arange(16) + 16 * n, np.full((16, 64), n, np.float32), tokens, 7)
    print(n, flush=True)
"""


def test_a_writer_killed_mid_shard_leaves_every_earlier_shard_intact(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path)], cwd=repo, stdout=subprocess.PIPE, text=True
    )
    for _ in range(3):
        written = int(process.stdout.readline())
    process.kill()
    process.wait()
    store = FeatureStore(tmp_path, "full")
    assert store.verify() == []
    ids, vectors = store.itc()
    shards = len(ids) // 16
    assert written + 1 <= shards <= written + 2 and len(ids) % 16 == 0, "whole shards only"
    for n in range(shards):
        assert (vectors[16 * n : 16 * n + 16] == n).all()
        assert store.tokens([16 * n])[0][0, 0] == n
    store.cleanup_temporary()
    assert not list((tmp_path / "shards").glob(".*.tmp"))
