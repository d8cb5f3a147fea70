"""recengine.kernels.replay: the Triton td_loss launchers (CUDA, or the interpreter on the CPU) against the
plain-PyTorch reference."""

import pytest
import torch

pytest.importorskip("triton", reason="triton is the optional gpu extra; these tests run the Triton kernels")

from recengine.kernels import replay as triton_replay  # noqa: E402
from recengine.reference.replay import td_loss_reference  # noqa: E402
from tests.helpers import TRITON_DEVICE, assert_close, make_td_batch  # noqa: E402


@pytest.mark.parametrize("batch", [1, 5, 1500])
def test_td_loss_triton_matches_reference(batch):
    args = make_td_batch(batch, seed=10 + batch, done_dtype=torch.float32)
    q_sa, next_q, rewards, dones, discounts, weights = (a.to(TRITON_DEVICE) for a in args)
    loss, td, prio = triton_replay.td_loss(q_sa, next_q, rewards, dones, discounts, weights, 0.7, 0.6, 1e-6)
    q_ref, nq_ref = args[0].clone().requires_grad_(), args[1].clone().requires_grad_()
    rloss, rtd, rprio = td_loss_reference(q_ref, nq_ref, *args[2:], huber_delta=0.7, alpha=0.6, eps=1e-6)
    assert_close(loss.cpu(), rloss, rtol=1e-5, atol=1e-6, name="loss")
    assert_close(td.cpu(), rtd, name="td_errors")
    assert_close(prio.cpu(), rprio, rtol=1e-5, atol=1e-6, name="new_priorities")
    g_loss = torch.tensor(1.5)
    g_td = torch.randn(batch, generator=torch.Generator().manual_seed(3))
    gq, gnq = triton_replay.td_loss_backward(
        g_loss.to(TRITON_DEVICE), g_td.to(TRITON_DEVICE), td, weights, discounts, dones, 0.7
    )
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
