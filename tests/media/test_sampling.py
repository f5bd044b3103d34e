"""Frame sampling: the official equal-segment rule, and time-based sampling for variable frame rate."""

import numpy as np

from indexer.media.sampling import official_segment_indices, select_frames


def test_official_middle_frames_by_hand() -> None:
    rng = np.random.default_rng(0)
    # linspace(0, 30, 9).astype(int) = 0 3 7 11 15 18 22 26 30 -> (a + b) // 2
    assert official_segment_indices(30, 8, "middle", rng) == [1, 5, 9, 13, 16, 20, 24, 28]
    # Fewer frames than wanted: segments collapse and frames repeat, as in the official loader.
    assert official_segment_indices(3, 8, "middle", rng) == [0, 0, 0, 1, 1, 1, 2, 2]


def test_random_mode_stays_inside_each_segment() -> None:
    rng = np.random.default_rng(1)
    bounds = np.linspace(0, 100, 9).astype(int)
    for _ in range(50):
        picks = official_segment_indices(100, 8, "random", rng)
        assert all(low <= pick < high for pick, low, high in zip(picks, bounds[:-1], bounds[1:], strict=True))


def test_constant_rate_span_uses_the_official_rule_within_the_span() -> None:
    timestamps = np.arange(100) / 10  # 10 fps, 10 s
    picks = select_frames(timestamps, 2.0, 5.0, 8)
    assert list(picks) == [20 + i for i in official_segment_indices(30, 8, "middle", np.random.default_rng())]


def test_variable_rate_samples_the_frame_on_screen_at_equal_times() -> None:
    timestamps = np.array([0.0, 0.1, 0.2, 0.3, 2.0, 3.0])  # dense start, sparse end
    picks = select_frames(timestamps, 0.0, 4.0, 4)  # middles 0.5, 1.5, 2.5, 3.5
    assert list(picks) == [3, 3, 4, 5]


def test_a_span_shorter_than_a_frame_takes_the_frame_on_screen() -> None:
    timestamps = np.arange(10) * 1.0
    assert list(select_frames(timestamps, 3.2, 3.4, 2)) == [3, 3]
