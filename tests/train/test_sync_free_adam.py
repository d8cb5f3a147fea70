import pytest
import torch

from recengine.train.sync_free_adam import SyncFreeAdam
from tests.train.sync_counting import OpCounter


def _params(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(4, 3, generator=g).requires_grad_(), torch.randn(5, generator=g).requires_grad_()]


def _grads(step):
    g = torch.Generator().manual_seed(100 + step)
    return [torch.randn(4, 3, generator=g), torch.randn(5, generator=g)]


def test_sync_free_adam_matches_torch_adam_over_several_steps():
    ours, theirs = _params(), _params()
    opt, ref = (
        SyncFreeAdam(ours, lr=0.01, betas=(0.8, 0.99), eps=1e-6),
        torch.optim.Adam(theirs, lr=0.01, betas=(0.8, 0.99), eps=1e-6),
    )
    for step in range(5):
        for p, q, g in zip(ours, theirs, _grads(step)):
            p.grad, q.grad = g.clone(), g.clone()
        opt.step()
        ref.step()
    for p, q in zip(ours, theirs):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-7)


def test_sync_free_adam_step_reads_nothing_back():
    params = _params()
    opt = SyncFreeAdam(params, lr=0.01)
    for p, g in zip(params, _grads(0)):
        p.grad = g
    with OpCounter() as counter:
        opt.step()
    assert counter.host_reads() == {}
    assert counter.ops["aten.lerp_"] == len(params)


def test_sync_free_adam_skips_parameters_without_a_gradient():
    params = _params()
    before = params[1].detach().clone()
    opt = SyncFreeAdam(params, lr=0.01)
    params[0].grad = torch.ones(4, 3)
    opt.step()
    assert torch.equal(params[1].detach(), before)
    opt.zero_grad()
    assert params[0].grad is None


@pytest.mark.parametrize(
    "kwargs, match",
    [({"lr": -1.0}, "lr"), ({"lr": 0.1, "eps": 0.0}, "eps"), ({"lr": 0.1, "betas": (0.9, 1.0)}, "betas")],
)
def test_sync_free_adam_rejects_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SyncFreeAdam(_params(), **kwargs)
