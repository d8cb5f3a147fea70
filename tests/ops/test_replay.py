"""recengine.ops replay family: the public td_loss op (on the CPU: the C++ kernel) against
recengine.reference.replay, forward and backward, with opcheck and its bad inputs. The Triton launchers are tested in
tests/kernels/test_replay.py, the sum-tree kernels under the buffer in tests/csrc/test_replay.py."""

import math

import pytest
import torch

from recengine.ops import td_loss
from recengine.reference.replay import td_loss_reference
from tests.helpers import assert_close, make_td_batch


# ------------------------------------------------------------------------------------- td_loss
@pytest.mark.parametrize("batch", [1, 7, 256, 3001])
@pytest.mark.parametrize("huber_delta,alpha,eps", [(1.0, 0.6, 1e-6), (0.25, 1.0, 0.0), (10.0, 0.0, 1e-3)])
@pytest.mark.parametrize("done_dtype", [torch.bool, torch.float32, torch.uint8])
def test_td_loss_cpu_forward_backward_matches_reference(batch, huber_delta, alpha, eps, done_dtype):
    args = make_td_batch(batch, seed=batch, done_dtype=done_dtype)
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


def test_td_loss_next_q_without_grad_gets_none_and_target_is_detached():
    q_sa, next_q, *rest = make_td_batch(16, seed=2)
    q_sa.requires_grad_()
    loss, _, _ = td_loss(q_sa, next_q, *rest)
    loss.backward()
    assert next_q.grad is None and q_sa.grad is not None


def test_td_loss_non_contiguous_inputs():
    base = [torch.stack([a, a], 1) for a in make_td_batch(33, seed=4, done_dtype=torch.float32)]
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
    q_sa, next_q, rewards, dones, discounts, weights = make_td_batch(9, seed=5, done_dtype=torch.float32)
    torch.library.opcheck(
        torch.ops.recengine.td_loss.default,
        (q_sa.requires_grad_(), next_q.requires_grad_(), rewards, dones, discounts, weights, 1.0, 0.6, 1e-6),
    )
    td = torch.randn(9)
    torch.library.opcheck(
        torch.ops.recengine.td_loss_backward.default,
        (torch.tensor(1.0), torch.randn(9), td, weights, discounts, dones, 1.0),
    )


@pytest.mark.parametrize(
    "bad,exc,match",
    [
        (dict(q_sa=torch.zeros(4, dtype=torch.float64)), TypeError, "q_sa"),
        (dict(weight=torch.zeros(3)), ValueError, "weight"),
        (dict(done=torch.zeros(4, dtype=torch.int64)), TypeError, "done"),
        (dict(reward=torch.zeros(4, 1)), ValueError, "reward"),
        (dict(huber_delta=0.0), ValueError, "huber_delta"),
        (dict(alpha=-1.0), ValueError, "alpha"),
        (dict(eps=float("nan")), ValueError, "eps"),
        (dict(next_q=[0.0] * 4), TypeError, "next_q"),
    ],
)
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


# ------------------------------------------------------------------- the W4 DQN step, composed


def test_td_loss_zero_td_with_zero_eps_priority():
    """td == 0 with eps == 0: 0^alpha is 0 for alpha > 0 and 1 for alpha == 0 (as torch.pow)."""
    z, ones = torch.zeros(4), torch.ones(4)
    for alpha in (0.6, 0.0):
        _, _, cprio = td_loss(z, z, z, z, ones, ones, alpha=alpha, eps=0.0)
        assert_close(cprio, torch.zeros(4) ** alpha, name=f"cpu prio alpha={alpha}")


def test_td_loss_compiles_without_graph_breaks():
    explanation = torch._dynamo.explain(td_loss)(*make_td_batch(16, 0))
    torch._dynamo.reset()
    assert explanation.graph_break_count == 0, explanation.break_reasons


def test_exported_td_loss_matches_eager():
    class Loss(torch.nn.Module):
        def forward(self, *batch):
            return td_loss(*batch)

    exported = torch.export.export(Loss(), make_td_batch(16, 0))
    other = make_td_batch(16, 1)
    for got, want in zip(exported.module()(*other), td_loss(*other)):
        assert torch.equal(got, want)
