"""Batch order: random batches of one kind, and batches of nearest neighbours for hard in-batch negatives."""

from __future__ import annotations

import numpy as np
import pytest

from mplug2.train.data import batch_order, neighbour_batches


def clustered_features(clusters: int, per_cluster: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    """Unit vectors around `clusters` well-separated centres, cluster by cluster."""
    rng = np.random.default_rng(seed)
    centres = np.eye(dim)[:clusters] * 10
    points = np.concatenate([centre + rng.normal(size=(per_cluster, dim)) for centre in centres])
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def test_neighbour_batches_gather_each_cluster_and_use_each_sample_once() -> None:
    features = clustered_features(clusters=4, per_cluster=8)
    item_ids = list(range(32))
    batches = neighbour_batches(
        features, item_ids, np.random.default_rng(0).permutation(32), 8, np.random.default_rng(1)
    )
    assert len(batches) == 4
    assert sorted(i for batch in batches for i in batch) == list(range(32))
    assert sorted(sorted({i // 8 for i in batch}) for batch in batches) == [[0], [1], [2], [3]]


def test_an_item_appears_at_most_once_in_a_neighbour_batch() -> None:
    # Three captions per item: their samples are each other's nearest neighbours, but a batch takes one of them.
    features = np.repeat(clustered_features(clusters=2, per_cluster=8), 3, axis=0)
    item_ids = [i // 3 for i in range(48)]
    batches = neighbour_batches(features, item_ids, np.arange(48), 8, np.random.default_rng(0))
    assert len(batches) == 6
    for batch in batches:
        assert len({item_ids[i] for i in batch}) == 8


def test_batch_order_mixes_hard_and_random_batches_of_one_kind() -> None:
    kinds = ["video"] * 64 + ["image"] * 32
    features = np.concatenate([clustered_features(4, 16), clustered_features(4, 8, seed=1)])
    cluster = [i // 16 if i < 64 else 4 + (i - 64) // 8 for i in range(96)]

    def order(hard_fraction: float) -> list[list[int]]:
        return batch_order(kinds, 3, 8, 0, hard_fraction, features, list(range(96)))

    def purity(batches: list[list[int]]) -> float:
        return float(np.mean([np.bincount([cluster[i] for i in batch]).max() / len(batch) for batch in batches]))

    for hard_fraction in (0.0, 0.5, 1.0):
        batches = order(hard_fraction)
        assert len(batches) == 12 and len({i for batch in batches for i in batch}) == 96
        assert all(len({kinds[i] for i in batch}) == 1 for batch in batches)
    assert purity(order(1.0)) == 1.0, "all batches of neighbours: each is one cluster"
    assert purity(order(0.0)) < 0.6 < purity(order(0.5)) < 1.0
    assert order(0.5) == order(0.5), "the order derives from (seed, epoch) and the features alone"


def test_hard_batches_need_features() -> None:
    with pytest.raises(ValueError, match="features"):
        batch_order(["video"] * 16, epoch=0, batch_size=8, seed=0, hard_fraction=0.5)
