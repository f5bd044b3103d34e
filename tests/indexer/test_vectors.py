"""The FAISS index on real FAISS: exact search, filters inside the search, removal, training, atomic saves."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from indexer.store.vectors import VectorIndex, training_threshold


def unit_vectors(n: int, d: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_exact_search_equals_brute_force() -> None:
    data, queries = unit_vectors(500, 32), unit_vectors(5, 32, seed=1)
    ids = np.arange(1000, 1500)
    index = VectorIndex(32)
    index.add(ids, data)
    hits = index.search(queries, 10)
    expected = ids[np.argsort(-(queries @ data.T), axis=1)[:, :10]]
    assert np.array_equal(hits.ids, expected)
    assert np.allclose(hits.scores, np.sort(queries @ data.T, axis=1)[:, ::-1][:, :10], atol=1e-5)


@pytest.mark.parametrize("factory", ["Flat", "HNSW32", "IVF8,Flat"])
def test_filters_act_inside_the_search(factory: str) -> None:
    data = unit_vectors(2000, 16)
    index = VectorIndex(16, factory)
    index.add(np.arange(2000), data)
    assert index.effective_factory == factory
    allowed = np.arange(0, 2000, 50)  # 40 ids, none of them likely in the unfiltered top 10
    hits = index.search(data[7], 10, allowed_ids=allowed)
    assert len(hits.ids[0]) == 10 and set(hits.ids[0]) <= set(allowed), "k results, all allowed"


def test_overfetch_path_finds_k_allowed_results() -> None:
    data = unit_vectors(1000, 16)
    index = VectorIndex(16)
    index.add(np.arange(1000), data)
    allowed = np.arange(900, 1000)
    hits = index._overfetch(index._index, data[:3], 10, allowed)
    assert (hits.ids >= 900).all() and hits.ids.shape == (3, 10)
    exact = index.search(data[:3], 10, allowed_ids=allowed)
    assert np.array_equal(hits.ids, exact.ids)


def test_removal_in_place_and_by_tombstones() -> None:
    data = unit_vectors(300, 16)
    for factory in ("Flat", "HNSW32"):
        index = VectorIndex(16, factory)
        index.add(np.arange(300), data)
        assert index.remove(np.array([5, 6, 999])) == 2
        hits = index.search(data[5], 3)
        assert 5 not in hits.ids[0] and 6 not in hits.ids[0]
        assert index.ntotal == 298 and 5 not in index.ids()
        assert bool(index.tombstones) == (factory == "HNSW32")


def test_a_trainable_index_stays_exact_until_it_has_enough_data() -> None:
    factory = "IVF4,Flat"
    assert training_threshold(factory) == 156
    index = VectorIndex(16, factory)
    index.add(np.arange(100), unit_vectors(100, 16))
    assert index.effective_factory == "Flat"
    index.add(np.arange(100, 300), unit_vectors(200, 16, seed=3))
    assert index.effective_factory == factory and index.ntotal == 300


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    data = unit_vectors(200, 8)
    index = VectorIndex(8, "HNSW32", model="m1")
    index.add(np.arange(200), data)
    index.remove(np.array([3]))
    index.save(tmp_path / "v.faiss")
    loaded = VectorIndex.load(tmp_path / "v.faiss")
    assert loaded.tombstones == {3} and loaded.model == "m1" and loaded.ntotal == 199
    assert np.array_equal(loaded.search(data[:4], 5).ids, index.search(data[:4], 5).ids)


SAVER = """
import sys, numpy as np
from indexer.store.vectors import VectorIndex
path = sys.argv[1]
for n in range(1, 10_000):
    x = np.random.default_rng(n).standard_normal((20000, 64)).astype(np.float32)
    index = VectorIndex(64)
    index.add(np.arange(20000) + n * 100000, x / np.linalg.norm(x, axis=1, keepdims=True))
    index.save(path)
    print(n, flush=True)
"""


def test_a_kill_during_save_leaves_the_previous_index_loadable(tmp_path: Path) -> None:
    path = tmp_path / "v.faiss"
    repo = Path(__file__).resolve().parents[2]
    for delay in (0.05, 0.13, 0.21):
        process = subprocess.Popen(
            [sys.executable, "-c", SAVER, str(path)], cwd=repo, stdout=subprocess.PIPE, text=True
        )
        assert process.stdout.readline()  # one save completed
        time.sleep(delay)  # then kill it somewhere in the next save
        process.kill()
        process.wait()
        loaded = VectorIndex.load(path)
        assert loaded.ntotal == 20000
        first = loaded.ids()[0]
        assert np.array_equal(loaded.ids(), np.arange(20000) + first), "one whole version, never a mix"
