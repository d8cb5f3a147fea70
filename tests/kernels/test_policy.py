"""recengine.kernels.policy: the Triton launchers (CUDA, or the interpreter on the CPU) against the plain-PyTorch
references, with the CPU op for the same-draw check."""

import pytest
import torch

pytest.importorskip("triton", reason="triton is the optional gpu extra; these tests run the Triton kernels")

from recengine.kernels import policy as triton_policy  # noqa: E402
from recengine.ops import catalog_sample  # noqa: E402
from recengine.ops.counter_hash import seed_key  # noqa: E402
from recengine.reference import policy as ref  # noqa: E402
from tests.helpers import TRITON_DEVICE, assert_close, make_catalog_case, valid_catalog_targets  # noqa: E402


def _on(dev, kw):
    return {n: v.to(dev) for n, v in kw.items()}


@pytest.mark.parametrize("excl", [True, False])
@pytest.mark.parametrize("B,N", [(19, 300), (70, 700)])  # one row block; two (of 64) and many splits
def test_triton_topk_sample_lse(excl, B, N):
    Q, E, kw = make_catalog_case(B=B, N=N, D=24, excl=excl)
    T = 0.8
    d = TRITON_DEVICE
    off, ids = kw.get("exclude_offsets"), kw.get("exclude_ids")
    args = (kw["bias"].to(d), 1 / T, None if off is None else off.to(d), None if ids is None else ids.to(d))
    s, i = triton_policy.catalog_topk(Q.to(d), E.to(d), 7, *args)
    r_s, r_i = ref.catalog_topk_reference(Q, E, 7, temperature=T, **kw)
    assert torch.equal(i.cpu(), r_i)
    assert_close(s.cpu(), r_s, rtol=1e-5, atol=1e-5)
    lse = triton_policy.catalog_logsumexp(Q.to(d), E.to(d), *args)
    assert_close(lse.cpu(), ref.catalog_logsumexp_reference(Q, E, temperature=T, **kw), rtol=1e-5, atol=1e-5)
    seed = 77
    t_ids, t_lp = triton_policy.catalog_sample(Q.to(d), E.to(d), 4, seed_key(seed), *args)
    c_ids, c_lp = catalog_sample(Q, E, 4, seed, temperature=T, **kw)  # the C++ backend
    r_ids, r_lp = ref.catalog_sample_reference(Q, E, 4, seed, temperature=T, **kw)
    assert torch.equal(t_ids.cpu(), r_ids) and torch.equal(c_ids, r_ids)
    assert_close(t_lp.cpu(), r_lp, rtol=1e-5, atol=1e-5)


def test_triton_topk_ties_and_k_near_n():
    g = torch.Generator().manual_seed(4)
    # small integers (exact in any summation order); 70 items, ties within and across tiles and splits
    E = torch.randint(-3, 4, (10, 16), generator=g).float().repeat(7, 1)
    Q = torch.randint(-3, 4, (3, 16), generator=g).float()
    Q[1] = 0
    d = TRITON_DEVICE
    for k in (1, 9, 70):
        s, i = triton_policy.catalog_topk(Q.to(d), E.to(d), k, None, 1.0, None, None)
        r_s, r_i = ref.catalog_topk_reference(Q, E, k)
        assert torch.equal(i.cpu(), r_i)
        assert_close(s.cpu(), r_s, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("B,N", [(17, 90), (70, 700)])  # one split of one tile; two row blocks, splits of 2 tiles
@pytest.mark.parametrize(
    "need",
    [(True, True, True), (True, True, False), (True, False, True), (True, False, False), (False, True, True)],
    ids=["one-pass all", "one-pass dQ dE", "one-pass dQ dbias", "dQ alone", "dE dbias alone"],
)
def test_triton_cross_entropy_backward(B, N, need):
    Q, E, kw = make_catalog_case(B=B, N=N, D=20)
    T = 0.9
    target = valid_catalog_targets(B, N, kw)
    leaves = [Q.double().requires_grad_(), E.double().requires_grad_(), kw["bias"].double().requires_grad_()]
    excl = {n: v for n, v in kw.items() if n != "bias"}
    rows = ref.catalog_cross_entropy_reference(
        *leaves[:2], target, bias=leaves[2], temperature=T, reduction="none", **excl
    )
    w = torch.linspace(0.5, 1.5, B, dtype=torch.float64)
    (rows * w).sum().backward()
    lse = ref.catalog_logsumexp_reference(Q, E, bias=kw["bias"], temperature=T, **excl)
    d = TRITON_DEVICE
    scale = (w.float() / T).to(d)
    dQ, dE, db = triton_policy.catalog_cross_entropy_backward(
        Q.to(d),
        E.to(d),
        target.to(d),
        kw["bias"].to(d),
        lse.to(d),
        scale,
        scale,
        1 / T,
        excl["exclude_offsets"].to(d),
        excl["exclude_ids"].to(d),
        *need,
    )
    for got, leaf, name, wanted in zip((dQ, dE, db), leaves, ("dQ", "dE", "dbias"), need):
        if wanted:
            assert_close(got.cpu(), leaf.grad, rtol=1e-4, atol=2e-5, name=name)
        else:
            assert got.numel() == 0, f"{name} was not asked for"


def test_triton_cross_entropy_backward_one_split_when_the_partials_budget_is_small(monkeypatch):
    monkeypatch.setattr(triton_policy, "CE_BWD_PARTIALS_BYTES", 1)  # one split walks the whole catalog
    B, N, T = 9, 200, 1.0
    Q, E, kw = make_catalog_case(B=B, N=N, D=12)
    target = valid_catalog_targets(B, N, kw)
    leaves = [Q.double().requires_grad_(), E.double().requires_grad_()]
    excl = {n: v for n, v in kw.items() if n != "bias"}
    ref.catalog_cross_entropy_reference(*leaves, target, reduction="sum", **excl).backward()
    lse = ref.catalog_logsumexp_reference(Q, E, **excl)
    d = TRITON_DEVICE
    ones = torch.ones(B, device=d)
    dQ, dE, _ = triton_policy.catalog_cross_entropy_backward(
        Q.to(d),
        E.to(d),
        target.to(d),
        None,
        lse.to(d),
        ones,
        ones,
        1 / T,
        excl["exclude_offsets"].to(d),
        excl["exclude_ids"].to(d),
        True,
        True,
        False,
    )
    assert_close(dQ.cpu(), leaves[0].grad, rtol=1e-4, atol=2e-5, name="dQ")
    assert_close(dE.cpu(), leaves[1].grad, rtol=1e-4, atol=2e-5, name="dE")
