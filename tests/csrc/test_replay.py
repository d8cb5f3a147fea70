"""csrc/replay: the sum-tree, gather and sampling kernels the prioritized replay buffer runs on, called through
recengine._native.cpu_ops() against recengine.reference.replay (cumulative sums, the NumPy sum-tree)."""

import math

import numpy as np
import pytest
import torch

from recengine._native import cpu_ops
from recengine.reference.replay import NumpySumTree, importance_weights_reference, sample_indices_reference
from tests.helpers import assert_close

_C = cpu_ops()


def _tree(priorities: np.ndarray, alpha: float = 1.0):
    """Trees holding `priorities` (raw) for slots [0, n), built through the C++ update."""
    n = priorities.shape[0]
    leaves = 1 << max(0, math.ceil(math.log2(n)))
    s, m = np.zeros(2 * leaves), np.full(2 * leaves, np.inf)
    _C.replay_tree_update(s, m, n, np.arange(n, dtype=np.int64), priorities, alpha)
    return s, m, leaves


def _rebuilt(s, m, leaves):
    s2, m2 = s.copy(), m.copy()
    _C.replay_tree_rebuild(s2, m2)
    return s2, m2


@pytest.mark.parametrize("n", [1, 5, 64, 1000])
def test_tree_sample_matches_cumsum_reference(n):
    rng = np.random.default_rng(n)
    prio = rng.random(n) * (rng.random(n) > 0.2)  # some zeros, never drawn
    prio[0] = 0.5  # never all zero
    s, m, leaves = _tree(prio, alpha=0.6)
    leaf = torch.from_numpy(s[leaves : leaves + n].copy())
    assert_close(leaf, torch.from_numpy(prio) ** 0.6, rtol=1e-12, atol=0, name="leaves")
    u = torch.from_numpy(rng.random(97))
    idx, w = np.empty(97, dtype=np.int64), np.empty(97, dtype=np.float32)
    _C.replay_tree_sample(s, m, u.numpy(), 0.4, idx, w)
    expected = sample_indices_reference(leaf, u)
    assert torch.equal(torch.from_numpy(idx), expected)
    assert (prio[idx] > 0).all()
    assert_close(torch.from_numpy(w), importance_weights_reference(leaf, expected, 0.4), rtol=1e-6, name="weights")
    # the NumPy tree (the benchmark baseline) draws the same
    t = NumpySumTree(n)
    t.update(np.arange(n), prio**0.6)
    ref_idx, _ = t.sample(u.numpy())
    assert np.array_equal(ref_idx, idx)


def test_tree_update_validates_before_writing_and_keeps_trees_exact():
    s, m, leaves = _tree(np.linspace(0.1, 1.0, 10))
    before = (s.copy(), m.copy())
    for idx, prio, exc in [
        ([0, 3], [1.0, float("nan")], ValueError),
        ([0, 3], [1.0, -0.5], ValueError),
        ([0, 10], [1.0, 2.0], IndexError),  # slot 10 never written (limit 10)
        ([-1, 2], [1.0, 2.0], IndexError),
    ]:
        with pytest.raises(exc):
            _C.replay_tree_update(s, m, 10, np.array(idx, dtype=np.int64), np.array(prio), 1.0)
        assert np.array_equal(s, before[0]) and np.array_equal(m, before[1])
    with pytest.raises(TypeError, match="indices"):
        _C.replay_tree_update(s, m, 10, np.array([1], dtype=np.int32), np.array([1.0]), 1.0)
    with pytest.raises(TypeError, match="priorities"):
        _C.replay_tree_update(s, m, 10, np.array([1], dtype=np.int64), np.array([1], dtype=np.int64), 1.0)
    # duplicates: the last wins; every node equals a rebuild from the leaves, bit for bit
    top = _C.replay_tree_update(s, m, 10, np.array([2, 2, 7], dtype=np.int64), np.array([5.0, 0.0, 3.0]), 1.0)
    assert top == 5.0 and s[leaves + 2] == 0.0 and m[leaves + 2] == np.inf
    rs, rm = _rebuilt(s, m, leaves)
    assert np.array_equal(s, rs) and np.array_equal(m, rm)


def test_tree_does_not_drift_over_many_updates():
    n = 1 << 12
    rng = np.random.default_rng(0)
    s, m, leaves = _tree(rng.random(n))
    for _ in range(200):
        idx = rng.integers(0, n, 64)
        _C.replay_tree_update(s, m, n, idx, rng.random(64) * 1e3, 1.0)
    rs, rm = _rebuilt(s, m, leaves)
    assert np.array_equal(s, rs) and np.array_equal(m, rm)
    assert math.isclose(s[1], math.fsum(s[leaves:]), rel_tol=1e-12)


def test_tree_fill_wraps_and_sample_checks():
    s, m = np.zeros(16), np.full(16, np.inf)
    _C.replay_tree_fill(s, m, 6, 4, 4, 2.0)  # slots 4, 5, 0, 1 of a capacity-6 ring
    assert list(s[8:14]) == [2.0, 2.0, 0.0, 0.0, 2.0, 2.0] and s[1] == 8.0
    idx, w = np.empty(3, dtype=np.int64), np.empty(3, dtype=np.float32)
    with pytest.raises(ValueError, match="uniforms"):
        _C.replay_tree_sample(s, m, np.array([0.1, 1.0, 0.2]), 0.4, idx, w)
    with pytest.raises(ValueError, match="total"):
        _C.replay_tree_sample(np.zeros(16), m, np.array([0.1, 0.5, 0.2]), 0.4, idx, w)
    with pytest.raises(ValueError, match="leaves"):
        _C.replay_tree_rebuild(np.zeros(12), np.zeros(12))


def test_gather_rows_checks_its_arrays():
    src = np.arange(20, dtype=np.int64).reshape(10, 2)
    dst = np.empty((3, 2), dtype=np.int64)
    _C.replay_gather_rows([src], np.array([9, 0, 4], dtype=np.int64), [dst])
    assert dst.tolist() == [[18, 19], [0, 1], [8, 9]]
    with pytest.raises(IndexError):
        _C.replay_gather_rows([src], np.array([10, 0, 4], dtype=np.int64), [dst])
    with pytest.raises(TypeError):
        _C.replay_gather_rows([src], np.array([1, 0, 4], dtype=np.int64), [dst.astype(np.int32)])
    with pytest.raises(TypeError):
        _C.replay_gather_rows([src], np.array([1, 0, 4], dtype=np.int64), [[0, 0]])


def test_sample_rows_equals_tree_sample_then_gather_rows():
    n = 300
    rng = np.random.default_rng(7)
    prio = rng.random(n) * (rng.random(n) > 0.3)
    prio[5] = 1.0
    s, m, leaves = _tree(prio, alpha=0.6)
    srcs = [
        rng.integers(0, 1 << 40, (n, 3)),
        rng.random(n).astype(np.float32),
        rng.random(n) < 0.5,
        rng.integers(0, 255, n).astype(np.uint8),
        rng.integers(-9, 9, (n, 2, 5)).astype(np.int16),
        rng.random(n),
    ]
    u = rng.random(64)
    idx, w, rows = _C.replay_sample_rows(s, m, u, 0.4, srcs)
    ref_idx, ref_w = np.empty(64, dtype=np.int64), np.empty(64, dtype=np.float32)
    _C.replay_tree_sample(s, m, u, 0.4, ref_idx, ref_w)
    assert np.array_equal(idx, ref_idx) and np.array_equal(w, ref_w)
    assert len(rows) == len(srcs)
    for src, got in zip(srcs, rows):
        assert got.dtype == src.dtype and np.array_equal(got, src[ref_idx])
    with pytest.raises(ValueError, match="uniforms"):
        _C.replay_sample_rows(s, m, np.array([0.2, 1.0]), 0.4, srcs)
    with pytest.raises(ValueError, match="beta"):
        _C.replay_sample_rows(s, m, u, -1.0, srcs)
    with pytest.raises(TypeError):
        _C.replay_sample_rows(s, m, u, 0.4, [[1, 2, 3]])
    with pytest.raises(IndexError):  # a column shorter than the drawn slots
        _C.replay_sample_rows(s, m, u, 0.4, [srcs[0][:3]])


def test_min_tree_early_stop_matches_a_rebuild_with_zeros_and_ties():
    n = 1 << 10
    rng = np.random.default_rng(3)
    s, m, leaves = _tree(rng.integers(0, 4, n).astype(np.float64))
    for _ in range(100):  # few distinct values: many ties, zeros (inf in the min-tree), sorted and not
        idx = rng.integers(0, n, 32)
        if rng.random() < 0.5:
            idx = np.sort(idx)
        _C.replay_tree_update(s, m, n, idx, rng.integers(0, 4, 32).astype(np.float64), 1.0)
        rs, rm = _rebuilt(s, m, leaves)
        assert np.array_equal(s, rs) and np.array_equal(m, rm)


def test_numpy_tree_without_per_level_unique_is_the_same_tree():
    """The faster NumPy baseline (no np.unique per level) builds and samples exactly the same trees."""
    rng = np.random.default_rng(4)
    a, b = NumpySumTree(1000), NumpySumTree(1000, unique=False)
    for _ in range(20):
        idx = rng.integers(0, 1000, size=64)  # duplicates included
        values = rng.random(64) * 3
        a.update(idx, values)
        b.update(idx, values)
    assert np.array_equal(a.sum, b.sum) and np.array_equal(a.min, b.min)
    u = rng.random(50)
    assert all(np.array_equal(x, y) for x, y in zip(a.sample(u), b.sample(u)))
