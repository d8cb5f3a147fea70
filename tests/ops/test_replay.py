"""Replay family ops: td_loss (C++ and Triton) and the sum-tree kernels, against recengine.reference.replay."""
import math

import numpy as np
import pytest
import torch

from recengine._native import cpu_ops
from recengine.kernels import replay as triton_replay
from recengine.ops import td_loss
from recengine.reference.replay import (
    NumpySumTree,
    importance_weights_reference,
    sample_indices_reference,
    td_loss_reference,
)
from tests.helpers import TRITON_DEVICE, assert_close


def _inputs(batch, seed, done_dtype=torch.bool, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    q_sa = torch.randn(batch, generator=g) * scale
    next_q = torch.randn(batch, generator=g) * scale
    rewards = torch.randn(batch, generator=g)
    dones = (torch.rand(batch, generator=g) < 0.3).to(done_dtype)
    discounts = torch.rand(batch, generator=g)
    weights = torch.rand(batch, generator=g)
    return q_sa, next_q, rewards, dones, discounts, weights


# ------------------------------------------------------------------------------------- td_loss
@pytest.mark.parametrize("batch", [1, 7, 256, 3001])
@pytest.mark.parametrize("huber_delta,alpha,eps", [(1.0, 0.6, 1e-6), (0.25, 1.0, 0.0), (10.0, 0.0, 1e-3)])
@pytest.mark.parametrize("done_dtype", [torch.bool, torch.float32, torch.uint8])
def test_td_loss_cpu_forward_backward_matches_reference(batch, huber_delta, alpha, eps, done_dtype):
    args = _inputs(batch, seed=batch, done_dtype=done_dtype)
    kw = dict(huber_delta=huber_delta, alpha=alpha, eps=eps)
    ours_in = [a.clone().requires_grad_(i < 2) for i, a in enumerate(args)]
    ref_in = [a.clone().requires_grad_(i < 2) for i, a in enumerate(args)]
    loss, td, prio = td_loss(*ours_in, **kw)
    rloss, rtd, rprio = td_loss_reference(*ref_in, **kw)
    assert loss.shape == () and td.shape == (batch,) and prio.shape == (batch,)
    assert_close(loss, rloss, rtol=1e-5, atol=1e-6, name="loss")
    assert_close(td, rtd, name="td_errors")
    assert_close(prio, rprio, rtol=1e-5, atol=1e-6, name="new_priorities")
    assert not prio.requires_grad
    # upstream gradients on both differentiable outputs
    g = torch.Generator().manual_seed(1)
    g_loss, g_td = torch.rand((), generator=g) + 0.5, torch.randn(batch, generator=g)
    grads = torch.autograd.grad((loss, td), ours_in[:2], (g_loss, g_td))
    rgrads = torch.autograd.grad((rloss, rtd), ref_in[:2], (g_loss, g_td))
    assert_close(grads[0], rgrads[0], rtol=1e-5, atol=1e-7, name="grad q_sa")
    assert_close(grads[1], rgrads[1], rtol=1e-5, atol=1e-7, name="grad next_q")


@pytest.mark.parametrize("batch", [1, 5, 1500])
def test_td_loss_triton_matches_reference(batch):
    args = _inputs(batch, seed=10 + batch, done_dtype=torch.float32)
    q_sa, next_q, rewards, dones, discounts, weights = (a.to(TRITON_DEVICE) for a in args)
    loss, td, prio = triton_replay.td_loss(q_sa, next_q, rewards, dones, discounts, weights, 0.7, 0.6, 1e-6)
    q_ref, nq_ref = args[0].clone().requires_grad_(), args[1].clone().requires_grad_()
    rloss, rtd, rprio = td_loss_reference(q_ref, nq_ref, *args[2:], huber_delta=0.7, alpha=0.6, eps=1e-6)
    assert_close(loss.cpu(), rloss, rtol=1e-5, atol=1e-6, name="loss")
    assert_close(td.cpu(), rtd, name="td_errors")
    assert_close(prio.cpu(), rprio, rtol=1e-5, atol=1e-6, name="new_priorities")
    g_loss = torch.tensor(1.5)
    g_td = torch.randn(batch, generator=torch.Generator().manual_seed(3))
    gq, gnq = triton_replay.td_loss_backward(g_loss.to(TRITON_DEVICE), g_td.to(TRITON_DEVICE), td, weights,
                                             discounts, dones, 0.7)
    rq, rnq = torch.autograd.grad((rloss, rtd), (q_ref, nq_ref), (g_loss, g_td))
    assert_close(gq.cpu(), rq, rtol=1e-5, atol=1e-7, name="grad q_sa")
    assert_close(gnq.cpu(), rnq, rtol=1e-5, atol=1e-7, name="grad next_q")


def test_td_loss_triton_priority_edge_cases():
    # td == 0 with eps == 0: 0^alpha is 0 for alpha > 0 and 1 for alpha == 0 (as torch.pow)
    z = torch.zeros(4, device=TRITON_DEVICE)
    ones = torch.ones(4, device=TRITON_DEVICE)
    for alpha in (0.6, 0.0):
        _, td, prio = triton_replay.td_loss(z, z, z, z, ones, ones, 1.0, alpha, 0.0)
        assert_close(prio.cpu(), torch.zeros(4) ** alpha, name=f"prio alpha={alpha}")
        _, _, cprio = td_loss(z.cpu(), z.cpu(), z.cpu(), z.cpu(), ones.cpu(), ones.cpu(), alpha=alpha, eps=0.0)
        assert_close(cprio, torch.zeros(4) ** alpha, name=f"cpu prio alpha={alpha}")


def test_td_loss_next_q_without_grad_gets_none_and_target_is_detached():
    q_sa, next_q, *rest = _inputs(16, seed=2)
    q_sa.requires_grad_()
    loss, _, _ = td_loss(q_sa, next_q, *rest)
    loss.backward()
    assert next_q.grad is None and q_sa.grad is not None


def test_td_loss_non_contiguous_inputs():
    base = [torch.stack([a, a], 1) for a in _inputs(33, seed=4, done_dtype=torch.float32)]
    strided = [b[:, 0] for b in base]
    assert not strided[0].is_contiguous()
    out = td_loss(*strided)
    ref = td_loss_reference(*[s.contiguous() for s in strided])
    for a, e, n in zip(out, ref, ("loss", "td", "prio")):
        assert_close(a, e, rtol=1e-5, atol=1e-6, name=n)


def test_td_loss_huber_regions():
    # |td| below, at and above delta: 0.5 td^2, 0.5 td^2, delta(|td| - delta/2)
    q = torch.tensor([0.0, 0.0, 0.0, 0.0])
    r = torch.tensor([0.5, -1.0, 3.0, -5.0])
    zeros, ones = torch.zeros(4), torch.ones(4)
    loss, td, _ = td_loss(q, zeros, r, zeros, zeros, ones, huber_delta=1.0)
    expected = (0.125 + 0.5 + 2.5 + 4.5) / 4
    assert math.isclose(float(loss), expected, rel_tol=1e-6)
    assert_close(td, r, name="td")


def test_td_loss_opcheck():
    q_sa, next_q, rewards, dones, discounts, weights = _inputs(9, seed=5, done_dtype=torch.float32)
    torch.library.opcheck(torch.ops.recengine.td_loss.default,
                          (q_sa.requires_grad_(), next_q.requires_grad_(), rewards, dones, discounts, weights,
                           1.0, 0.6, 1e-6))
    td = torch.randn(9)
    torch.library.opcheck(torch.ops.recengine.td_loss_backward.default,
                          (torch.tensor(1.0), torch.randn(9), td, weights, discounts, dones, 1.0))


@pytest.mark.parametrize("bad,exc,match", [
    (dict(q_sa=torch.zeros(4, dtype=torch.float64)), TypeError, "q_sa"),
    (dict(weight=torch.zeros(3)), ValueError, "weight"),
    (dict(done=torch.zeros(4, dtype=torch.int64)), TypeError, "done"),
    (dict(reward=torch.zeros(4, 1)), ValueError, "reward"),
    (dict(huber_delta=0.0), ValueError, "huber_delta"),
    (dict(alpha=-1.0), ValueError, "alpha"),
    (dict(eps=float("nan")), ValueError, "eps"),
    (dict(next_q=[0.0] * 4), TypeError, "next_q"),
])
def test_td_loss_bad_input(bad, exc, match):
    names = ["q_sa", "next_q", "reward", "done", "discount", "weight"]
    kwargs = dict(zip(names, [torch.zeros(4)] * 3 + [torch.zeros(4, dtype=torch.bool)] + [torch.ones(4)] * 2))
    kwargs.update(bad)
    with pytest.raises(exc, match=match):
        td_loss(**kwargs)


def test_td_loss_empty_batch_is_an_error():
    e = torch.zeros(0)
    with pytest.raises(ValueError, match="q_sa"):
        td_loss(e, e, e, e, e, e)


# ------------------------------------------------------------------------------- tree kernels
def _tree(priorities: np.ndarray, alpha: float = 1.0):
    """Trees holding `priorities` (raw) for slots [0, n), built through the C++ update."""
    n = priorities.shape[0]
    leaves = 1 << max(0, math.ceil(math.log2(n)))
    s, m = np.zeros(2 * leaves), np.full(2 * leaves, np.inf)
    cpu_ops().replay_tree_update(s, m, n, np.arange(n, dtype=np.int64), priorities, alpha)
    return s, m, leaves


def _rebuilt(s, m, leaves):
    s2, m2 = s.copy(), m.copy()
    cpu_ops().replay_tree_rebuild(s2, m2)
    return s2, m2


@pytest.mark.parametrize("n", [1, 5, 64, 1000])
def test_tree_sample_matches_cumsum_reference(n):
    rng = np.random.default_rng(n)
    prio = rng.random(n) * (rng.random(n) > 0.2)  # some zeros, never drawn
    prio[0] = 0.5  # never all zero
    s, m, leaves = _tree(prio, alpha=0.6)
    leaf = torch.from_numpy(s[leaves:leaves + n].copy())
    assert_close(leaf, torch.from_numpy(prio) ** 0.6, rtol=1e-12, atol=0, name="leaves")
    u = torch.from_numpy(rng.random(97))
    idx, w = np.empty(97, dtype=np.int64), np.empty(97, dtype=np.float32)
    cpu_ops().replay_tree_sample(s, m, u.numpy(), 0.4, idx, w)
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
            cpu_ops().replay_tree_update(s, m, 10, np.array(idx, dtype=np.int64), np.array(prio), 1.0)
        assert np.array_equal(s, before[0]) and np.array_equal(m, before[1])
    with pytest.raises(TypeError, match="indices"):
        cpu_ops().replay_tree_update(s, m, 10, np.array([1], dtype=np.int32), np.array([1.0]), 1.0)
    with pytest.raises(TypeError, match="priorities"):
        cpu_ops().replay_tree_update(s, m, 10, np.array([1], dtype=np.int64), np.array([1], dtype=np.int64), 1.0)
    # duplicates: the last wins; every node equals a rebuild from the leaves, bit for bit
    top = cpu_ops().replay_tree_update(s, m, 10, np.array([2, 2, 7], dtype=np.int64), np.array([5.0, 0.0, 3.0]), 1.0)
    assert top == 5.0 and s[leaves + 2] == 0.0 and m[leaves + 2] == np.inf
    rs, rm = _rebuilt(s, m, leaves)
    assert np.array_equal(s, rs) and np.array_equal(m, rm)


def test_tree_does_not_drift_over_many_updates():
    n = 1 << 12
    rng = np.random.default_rng(0)
    s, m, leaves = _tree(rng.random(n))
    for _ in range(200):
        idx = rng.integers(0, n, 64)
        cpu_ops().replay_tree_update(s, m, n, idx, rng.random(64) * 1e3, 1.0)
    rs, rm = _rebuilt(s, m, leaves)
    assert np.array_equal(s, rs) and np.array_equal(m, rm)
    assert math.isclose(s[1], math.fsum(s[leaves:]), rel_tol=1e-12)


def test_tree_fill_wraps_and_sample_checks():
    s, m = np.zeros(16), np.full(16, np.inf)
    cpu_ops().replay_tree_fill(s, m, 6, 4, 4, 2.0)  # slots 4, 5, 0, 1 of a capacity-6 ring
    assert list(s[8:14]) == [2.0, 2.0, 0.0, 0.0, 2.0, 2.0] and s[1] == 8.0
    idx, w = np.empty(3, dtype=np.int64), np.empty(3, dtype=np.float32)
    with pytest.raises(ValueError, match="uniforms"):
        cpu_ops().replay_tree_sample(s, m, np.array([0.1, 1.0, 0.2]), 0.4, idx, w)
    with pytest.raises(ValueError, match="total"):
        cpu_ops().replay_tree_sample(np.zeros(16), m, np.array([0.1, 0.5, 0.2]), 0.4, idx, w)
    with pytest.raises(ValueError, match="leaves"):
        cpu_ops().replay_tree_rebuild(np.zeros(12), np.zeros(12))


def test_gather_rows_checks_its_arrays():
    src = np.arange(20, dtype=np.int64).reshape(10, 2)
    dst = np.empty((3, 2), dtype=np.int64)
    cpu_ops().replay_gather_rows([src], np.array([9, 0, 4], dtype=np.int64), [dst])
    assert dst.tolist() == [[18, 19], [0, 1], [8, 9]]
    with pytest.raises(IndexError):
        cpu_ops().replay_gather_rows([src], np.array([10, 0, 4], dtype=np.int64), [dst])
    with pytest.raises(TypeError):
        cpu_ops().replay_gather_rows([src], np.array([1, 0, 4], dtype=np.int64), [dst.astype(np.int32)])
    with pytest.raises(TypeError):
        cpu_ops().replay_gather_rows([src], np.array([1, 0, 4], dtype=np.int64), [[0, 0]])


def test_sample_rows_equals_tree_sample_then_gather_rows():
    n = 300
    rng = np.random.default_rng(7)
    prio = rng.random(n) * (rng.random(n) > 0.3)
    prio[5] = 1.0
    s, m, leaves = _tree(prio, alpha=0.6)
    srcs = [rng.integers(0, 1 << 40, (n, 3)), rng.random(n).astype(np.float32), rng.random(n) < 0.5,
            rng.integers(0, 255, n).astype(np.uint8), rng.integers(-9, 9, (n, 2, 5)).astype(np.int16), rng.random(n)]
    u = rng.random(64)
    idx, w, rows = cpu_ops().replay_sample_rows(s, m, u, 0.4, srcs)
    ref_idx, ref_w = np.empty(64, dtype=np.int64), np.empty(64, dtype=np.float32)
    cpu_ops().replay_tree_sample(s, m, u, 0.4, ref_idx, ref_w)
    assert np.array_equal(idx, ref_idx) and np.array_equal(w, ref_w)
    assert len(rows) == len(srcs)
    for src, got in zip(srcs, rows):
        assert got.dtype == src.dtype and np.array_equal(got, src[ref_idx])
    with pytest.raises(ValueError, match="uniforms"):
        cpu_ops().replay_sample_rows(s, m, np.array([0.2, 1.0]), 0.4, srcs)
    with pytest.raises(ValueError, match="beta"):
        cpu_ops().replay_sample_rows(s, m, u, -1.0, srcs)
    with pytest.raises(TypeError):
        cpu_ops().replay_sample_rows(s, m, u, 0.4, [[1, 2, 3]])
    with pytest.raises(IndexError):  # a column shorter than the drawn slots
        cpu_ops().replay_sample_rows(s, m, u, 0.4, [srcs[0][:3]])


def test_min_tree_early_stop_matches_a_rebuild_with_zeros_and_ties():
    n = 1 << 10
    rng = np.random.default_rng(3)
    s, m, leaves = _tree(rng.integers(0, 4, n).astype(np.float64))
    for _ in range(100):  # few distinct values: many ties, zeros (inf in the min-tree), sorted and not
        idx = rng.integers(0, n, 32)
        if rng.random() < 0.5:
            idx = np.sort(idx)
        cpu_ops().replay_tree_update(s, m, n, idx, rng.integers(0, 4, 32).astype(np.float64), 1.0)
        rs, rm = _rebuilt(s, m, leaves)
        assert np.array_equal(s, rs) and np.array_equal(m, rm)


# ------------------------------------------------------------------- the W4 DQN step, composed
def test_w4_dqn_step_matches_the_plain_pytorch_step():
    """The benchmark's fused DQN step and its plain-PyTorch twin agree on a small catalog: same argmax,
    same loss, and after one Adam step the same MLP and the same table (on the first step, lazy Adam on
    the touched rows equals dense Adam: untouched rows have zero moments and move by 0)."""
    from recengine.bench import replay as bench_replay

    num_items, dim, hidden, history, batch = 300, 16, 32, 5, 8
    data = bench_replay._w4_batch(num_items, history, batch, 0.9, "cpu", torch.Generator().manual_seed(0))
    ours, ours_mlp, ours_table = bench_replay._w4_recengine_step(num_items, dim, hidden, data, "cpu", 1e-3)
    ref, ref_mlp, ref_table = bench_replay._w4_reference_step(num_items, dim, hidden, data, "cpu", 1e-3)
    loss, best = ours()
    rloss, rbest = ref()
    assert torch.equal(best, rbest)
    assert_close(loss, rloss, rtol=1e-5, atol=1e-6, name="loss")
    for p, q in zip(ours_mlp.parameters(), ref_mlp.parameters()):
        assert_close(p, q, rtol=1e-4, atol=1e-6, name="mlp after one step")
    assert_close(ours_table, ref_table, rtol=1e-4, atol=1e-6, name="table after one step")
    assert not torch.equal(ours_table, bench_replay._w4_recengine_step(num_items, dim, hidden, data, "cpu", 1e-3)[2])
