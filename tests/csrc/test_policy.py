"""csrc/policy: the C++ sweeps called through recengine._native.cpu_ops(), for what the public ops cannot reach:
the bindings' own last-line checks, and inv_temp applied per logit on both top-k paths."""

import pytest
import torch

from recengine.reference import policy as ref
from tests.helpers import assert_close, make_catalog_case


def test_cpp_sweeps_fold_bias_and_temperature():
    """The sweeps apply inv_temp = 1/T per logit, the way the ops call them on the CPU (and the Triton launchers on
    CUDA)."""
    from recengine._native import cpu_ops

    _C = cpu_ops()

    Q, E, kw = make_catalog_case(B=6, N=40, D=5)
    T, B = 0.6, 6
    bias, off, ex = kw["bias"], kw["exclude_offsets"], kw["exclude_ids"]
    m, s, lse = torch.full((B,), float("-inf")), torch.zeros(B), torch.empty(B)
    _C.policy_lse(Q.numpy(), E.numpy(), bias.numpy(), 1 / T, off.numpy(), ex.numpy(), m.numpy(), s.numpy(), None, None)
    _C.policy_lse_finish(m.numpy(), s.numpy(), lse.numpy())
    assert_close(lse, ref.catalog_logsumexp_reference(Q, E, temperature=T, **kw), rtol=1e-5, atol=1e-5)
    for bf16 in (False, True):
        _C.policy_set_topk_bf16(bf16)
        vals, ids = torch.full((B, 4), float("-inf")), torch.full((B, 4), -1)
        count = torch.zeros(B, dtype=torch.int64)
        _C.policy_topk(
            Q.numpy(), E.numpy(), bias.numpy(), 1 / T, off.numpy(), ex.numpy(), vals.numpy(), ids.numpy(), count.numpy()
        )
        _C.policy_heaps_finish(vals.numpy(), ids.numpy(), None, count.numpy())
        r_vals, r_ids = ref.catalog_topk_reference(Q, E, 4, temperature=T, **kw)
        assert torch.equal(ids, r_ids)
        assert_close(vals, r_vals, rtol=1e-5, atol=1e-5)
    _C.policy_set_topk_bf16(True)
    with pytest.raises(ValueError, match="exclude_offsets"):
        _C.policy_lse(Q.numpy(), E.numpy(), None, 1.0, (off + 1).numpy(), ex.numpy(), m.numpy(), s.numpy(), None, None)
    with pytest.raises(ValueError, match="bias"):
        _C.policy_lse(Q.numpy(), E.numpy(), bias[:-1].numpy(), 1.0, None, None, m.numpy(), s.numpy(), None, None)
