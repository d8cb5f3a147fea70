"""Length-bucketed and shuffled batches: every window once, similar lengths together (or mixed), reproducible."""

import numpy as np
import pytest

from recengine.train.batching import length_bucketed_batches, shuffled_batches


def test_every_index_once():
    lengths = np.random.default_rng(0).integers(1, 50, size=1000)
    batches = length_bucketed_batches(lengths, 32, np.random.default_rng(1))
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))


def test_batches_group_similar_lengths():
    lengths = np.random.default_rng(0).integers(1, 50, size=4096)
    batches = length_bucketed_batches(lengths, 32, np.random.default_rng(1))
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    random_spread = np.mean([np.ptp(lengths[b]) for b in np.array_split(np.arange(4096), 128)])
    assert spread < random_spread / 4


def test_same_generator_same_batches():
    lengths = np.arange(100)
    a = length_bucketed_batches(lengths, 8, np.random.default_rng(3))
    b = length_bucketed_batches(lengths, 8, np.random.default_rng(3))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_batch_size_must_be_positive():
    with pytest.raises(ValueError, match="batch_size"):
        length_bucketed_batches(np.arange(3), 0, np.random.default_rng(0))


def test_shuffled_batches_hold_every_index_once_mix_lengths_and_repeat_from_the_generator():
    lengths = np.random.default_rng(0).integers(1, 50, size=1000)
    batches = shuffled_batches(1000, 32, np.random.default_rng(1))
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    assert [len(b) for b in batches] == [32] * 31 + [8]
    bucketed = length_bucketed_batches(lengths, 32, np.random.default_rng(1))
    assert np.mean([np.ptp(lengths[b]) for b in batches]) > 4 * np.mean([np.ptp(lengths[b]) for b in bucketed])
    again = shuffled_batches(1000, 32, np.random.default_rng(1))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))
    with pytest.raises(ValueError, match="batch_size"):
        shuffled_batches(10, 0, np.random.default_rng(0))
