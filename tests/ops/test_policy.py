"""Catalog softmax-policy ops: C++ (through the public ops) and Triton (launchers, interpreter on CPU)
against the plain-PyTorch references."""
import math

import pytest
import torch

from recengine.kernels import policy as triton_policy
from recengine.ops import catalog_cross_entropy, catalog_logsumexp, catalog_sample, catalog_topk
from recengine.reference import policy as ref
from tests.helpers import TRITON_DEVICE, assert_close


@pytest.fixture
def small_blocks():
    """Tiles of 7 rows x 50 items in the C++ sweeps, so small inputs walk many row chunks and item blocks
    (with tails)."""
    from recengine import _C

    _C.policy_set_sweep_shape(7, 50)
    yield
    _C.policy_set_sweep_shape(0, 0)


def make_case(B=19, N=301, D=24, *, seed=0, bias=True, excl=True, scale=1.0, ids_dtype=torch.int64):
    g = torch.Generator().manual_seed(seed)
    Q = torch.randn(B, D, generator=g) * scale
    E = torch.randn(N, D, generator=g)
    kw = {}
    if bias:
        kw["bias"] = torch.randn(N, generator=g)
    if excl:
        counts = torch.randint(0, 9, (B,), generator=g)
        counts[0] = 0  # an empty list
        kw["exclude_offsets"] = torch.cat([torch.zeros(1, dtype=torch.int64), counts.cumsum(0)])
        ids = torch.randint(0, N, (int(counts.sum()),), generator=g)
        if ids.numel() > 1:
            ids[1] = ids[0]  # a duplicate
        kw["exclude_ids"] = ids.to(ids_dtype)
    return Q, E, kw


def valid_targets(B, N, kw, seed=0):
    g = torch.Generator().manual_seed(seed + 1)
    target = torch.randint(0, N, (B,), generator=g)
    mask = ref.exclusion_mask(B, N, kw.get("exclude_offsets"), kw.get("exclude_ids"))
    if mask is not None:
        for b in range(B):
            while mask[b, target[b]]:
                target[b] = (target[b] + 1) % N
    return target


CONFIGS = [
    dict(B=19, N=301, D=24, bias=True, excl=True, temperature=0.7),
    dict(B=19, N=301, D=24, bias=False, excl=False, temperature=1.0),
    dict(B=1, N=64, D=8, bias=True, excl=False, temperature=2.5),
    dict(B=8, N=50, D=3, bias=False, excl=True, temperature=0.3),
]


# --------------------------------------------------------------------------------------- top-k
@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("k", [1, 5, 40])
def test_topk_matches_reference(small_blocks, cfg, k):
    cfg = dict(cfg)
    T = cfg.pop("temperature")
    Q, E, kw = make_case(**cfg)
    scores, ids = catalog_topk(Q, E, k, temperature=T, **kw)
    r_scores, r_ids = ref.catalog_topk_reference(Q, E, k, temperature=T, **kw)
    assert ids.dtype == torch.int64 and scores.dtype == torch.float32
    assert torch.equal(ids, r_ids)
    assert_close(scores, r_scores, rtol=1e-5, atol=1e-5, name="scores")


def test_topk_k_near_catalog_size(small_blocks):
    Q, E, kw = make_case(B=6, N=60, D=8, excl=True)
    allowed = 60 - max(len(set(kw["exclude_ids"][kw["exclude_offsets"][b]:kw["exclude_offsets"][b + 1]].tolist()))
                       for b in range(6))
    for k in (allowed, allowed - 1):
        scores, ids = catalog_topk(Q, E, k, **kw)
        r_scores, r_ids = ref.catalog_topk_reference(Q, E, k, **kw)
        assert torch.equal(ids, r_ids)
        assert_close(scores, r_scores, rtol=1e-5, atol=1e-5)
    scores, ids = catalog_topk(Q, E, 60)  # the whole catalog, no exclusion: a full sort
    assert torch.equal(torch.sort(ids, 1).values, torch.arange(60).expand(6, 60))


def test_topk_ties_go_to_lower_id(small_blocks):
    g = torch.Generator().manual_seed(3)
    # small integers: every summation order gives the same score, so equal rows tie exactly
    base = torch.randint(-3, 4, (10, 4), generator=g).float()
    E = base.repeat(13, 1)  # item i and i + 10, i + 20, ... have equal scores, across blocks
    Q = torch.randint(-3, 4, (5, 4), generator=g).float()
    Q[0] = 0.0  # every item ties in row 0
    for k in (1, 7, 33):
        scores, ids = catalog_topk(Q, E, k)
        r_scores, r_ids = ref.catalog_topk_reference(Q, E, k)
        assert torch.equal(ids, r_ids)
        assert torch.equal(ids[0], torch.arange(k))
        tied = scores[:, 1:] == scores[:, :-1]
        assert bool((ids[:, 1:] > ids[:, :-1])[tied].all())


def test_topk_noncontiguous_and_int32_exclusions(small_blocks):
    Q, E, kw = make_case(ids_dtype=torch.int32)
    Qt = Q.t().contiguous().t()  # same values, column-major
    Et = torch.stack([E, E], 2)[:, :, 0]  # same values, strided
    assert not Qt.is_contiguous() or not Et.is_contiguous()
    s1, i1 = catalog_topk(Qt, Et, 6, **kw)
    s2, i2 = ref.catalog_topk_reference(Q, E, 6, **kw)
    assert torch.equal(i1, i2)
    assert_close(s1, s2, rtol=1e-5, atol=1e-5)


def test_topk_excluded_items_never_returned(small_blocks):
    Q, E, kw = make_case(B=12, N=40, D=6)
    _, ids = catalog_topk(Q, E, 30, **kw)
    off, ex = kw["exclude_offsets"], kw["exclude_ids"]
    for b in range(12):
        assert not set(ids[b].tolist()) & set(ex[off[b]:off[b + 1]].tolist())


def test_default_blocking():
    Q, E, kw = make_case(B=33, N=9000, D=16)  # the automatic tiles: 3 row chunks, 2 item blocks
    s, i = catalog_topk(Q, E, 10, **kw)
    r_s, r_i = ref.catalog_topk_reference(Q, E, 10, **kw)
    assert torch.equal(i, r_i)
    assert_close(s, r_s, rtol=1e-5, atol=1e-5)


# -------------------------------------------------------------------------------- logsumexp / CE
@pytest.mark.parametrize("cfg", CONFIGS)
def test_logsumexp_matches_reference(small_blocks, cfg):
    cfg = dict(cfg)
    T = cfg.pop("temperature")
    Q, E, kw = make_case(**cfg)
    assert_close(catalog_logsumexp(Q, E, temperature=T, **kw),
                 ref.catalog_logsumexp_reference(Q, E, temperature=T, **kw), rtol=1e-5, atol=1e-5)


def test_logsumexp_wide_logits_and_fully_excluded_row(small_blocks):
    Q, E, _ = make_case(B=3, N=20, D=4, scale=30.0)  # logits of several hundred: needs the running max
    off = torch.tensor([0, 20, 20, 21])
    ex = torch.cat([torch.arange(20), torch.tensor([5])])  # row 0 excludes everything
    out = catalog_logsumexp(Q, E, exclude_offsets=off, exclude_ids=ex)
    expect = ref.catalog_logsumexp_reference(Q, E, exclude_offsets=off, exclude_ids=ex)
    assert out[0] == float("-inf")
    assert_close(out, expect, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_and_grads_match_reference(small_blocks, cfg, reduction):
    cfg = dict(cfg)
    T = cfg.pop("temperature")
    Q, E, kw = make_case(**cfg)
    target = valid_targets(Q.shape[0], E.shape[0], kw).to(torch.int32)
    leaves = {"Q": Q.clone().requires_grad_(), "E": E.clone().requires_grad_()}
    r_leaves = {"Q": Q.double().requires_grad_(), "E": E.double().requires_grad_()}
    if "bias" in kw:
        leaves["bias"] = kw["bias"].clone().requires_grad_()
        r_leaves["bias"] = kw["bias"].double().requires_grad_()
    excl = {n: v for n, v in kw.items() if n != "bias"}
    loss = catalog_cross_entropy(leaves["Q"], leaves["E"], target, bias=leaves.get("bias"), temperature=T,
                                 reduction=reduction, **excl)
    r_loss = ref.catalog_cross_entropy_reference(r_leaves["Q"], r_leaves["E"], target, bias=r_leaves.get("bias"),
                                                 temperature=T, reduction=reduction, **excl)
    assert_close(loss, r_loss, rtol=1e-5, atol=1e-5, name="loss")
    w = torch.linspace(0.5, 1.5, loss.numel()).reshape(loss.shape)  # a non-uniform upstream gradient
    (loss * w).sum().backward()
    (r_loss * w.double()).sum().backward()
    for name in leaves:
        assert_close(leaves[name].grad, r_leaves[name].grad, rtol=1e-4, atol=2e-5, name=f"d{name}")


def test_cross_entropy_grad_only_where_asked(small_blocks):
    Q, E, kw = make_case(bias=True, excl=False)
    target = valid_targets(Q.shape[0], E.shape[0], kw)
    Qg = Q.clone().requires_grad_()
    catalog_cross_entropy(Qg, E, target, **kw).backward()
    r = Q.double().requires_grad_()
    ref.catalog_cross_entropy_reference(r, E.double(), target, bias=kw["bias"].double()).backward()
    assert_close(Qg.grad, r.grad, rtol=1e-4, atol=2e-5)
    assert E.grad is None


def test_reference_cross_entropy_gradcheck():
    """The reference's gradient (the truth the op's backward is compared to) against finite differences."""
    Q, E, kw = make_case(B=4, N=9, D=3)
    target = valid_targets(4, 9, kw)
    args = (Q.double().requires_grad_(), E.double().requires_grad_(), kw["bias"].double().requires_grad_())
    fn = lambda q, e, b: ref.catalog_cross_entropy_reference(  # noqa: E731
        q, e, target, bias=b, temperature=0.8, exclude_offsets=kw["exclude_offsets"], exclude_ids=kw["exclude_ids"],
        reduction="none")
    assert torch.autograd.gradcheck(fn, args)


def test_cross_entropy_op_finite_differences(small_blocks):
    """The op's own float32 gradient against central differences of its own loss (in float64 sums)."""
    Q, E, kw = make_case(B=3, N=40, D=4)
    target = valid_targets(3, 40, kw)
    Qg = Q.clone().requires_grad_()
    catalog_cross_entropy(Qg, E, target, reduction="sum", **kw).backward()
    eps = 1e-2
    for idx in [(0, 0), (1, 2), (2, 3)]:
        plus, minus = Q.clone(), Q.clone()
        plus[idx] += eps
        minus[idx] -= eps
        fd = (catalog_cross_entropy(plus, E, target, reduction="sum", **kw).double()
              - catalog_cross_entropy(minus, E, target, reduction="sum", **kw).double()) / (2 * eps)
        assert abs(float(fd) - float(Qg.grad[idx])) < 2e-3 * max(1.0, abs(float(fd)))


# ------------------------------------------------------------------------------------------ sampling
@pytest.mark.parametrize("cfg", CONFIGS)
def test_sample_matches_reference(small_blocks, cfg):
    cfg = dict(cfg)
    T = cfg.pop("temperature")
    Q, E, kw = make_case(**cfg)
    for seed in (0, 12345, 2**40 + 7, -3):
        ids, log_probs = catalog_sample(Q, E, 4, seed, temperature=T, **kw)
        r_ids, r_lp = ref.catalog_sample_reference(Q, E, 4, seed, temperature=T, **kw)
        assert torch.equal(ids, r_ids)
        assert_close(log_probs, r_lp, rtol=1e-5, atol=1e-5, name="log_probs")


def test_sample_pruned_path_matches_reference(small_blocks):
    """Wide logits: most items are skipped by the exact filters; the draw must not change."""
    Q, E, kw = make_case(B=16, N=500, D=8, scale=3.0)
    for seed in range(3):
        ids, lp = catalog_sample(Q, E, 10, seed, **kw)
        r_ids, r_lp = ref.catalog_sample_reference(Q, E, 10, seed, **kw)
        assert torch.equal(ids, r_ids)
        assert_close(lp, r_lp, rtol=1e-5, atol=1e-4)


def test_sample_same_seed_same_draw_different_seeds_differ(small_blocks):
    Q, E, kw = make_case(B=30, N=200, D=8)
    a = catalog_sample(Q, E, 5, 7, **kw)
    b = catalog_sample(Q, E, 5, 7, **kw)
    c = catalog_sample(Q, E, 5, 8, **kw)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    # items in a row are distinct, excluded ids never drawn
    off, ex = kw["exclude_offsets"], kw["exclude_ids"]
    for b_ in range(30):
        row = a[0][b_].tolist()
        assert len(set(row)) == 5
        assert not set(row) & set(ex[off[b_]:off[b_ + 1]].tolist())


def test_sample_excluded_never_drawn_when_almost_everything_excluded(small_blocks):
    Q, E, _ = make_case(B=200, N=12, D=4, excl=False)
    off = torch.arange(0, 201 * 9, 9)[:201]
    ex = torch.arange(9).repeat(200)  # every row allows only items 9, 10, 11
    ids, lp = catalog_sample(Q, E, 3, 1, exclude_offsets=off, exclude_ids=ex)
    assert torch.equal(torch.sort(ids, 1).values, torch.tensor([9, 10, 11]).expand(200, 3))
    assert_close(torch.logsumexp(lp, 1), torch.zeros(200), atol=1e-5)  # the three carry all the mass


def _chi_square(counts, probs):
    expected = probs * counts.sum()
    return float(((counts - expected) ** 2 / expected).sum())


def test_sample_k1_distribution_matches_softmax():
    """4000 independent draws (one per identical row, and over a fixed set of seeds): a chi-square
    goodness-of-fit against softmax(logits) at the 0.1% level (df = 7: 24.32). Deterministic."""
    g = torch.Generator().manual_seed(11)
    E = torch.randn(8, 5, generator=g)
    q = torch.randn(1, 5, generator=g)
    bias = torch.randn(8, generator=g)
    Q = q.expand(1000, 5).contiguous()
    probs = torch.softmax(((q @ E.T) + bias) / 1.3, 1)[0].double()
    counts = torch.zeros(8, dtype=torch.float64)
    for seed in range(4):
        ids, lp = catalog_sample(Q, E, 1, seed, bias=bias, temperature=1.3)
        counts += torch.bincount(ids[:, 0], minlength=8).double()
        assert_close(lp[:, 0].exp(), probs[ids[:, 0]].float(), rtol=1e-5, atol=1e-6, name="probs")
    assert _chi_square(counts, probs) < 24.32
    # and the same statistic is far off for a wrong distribution (the test can fail)
    assert _chi_square(counts, torch.full((8,), 1 / 8, dtype=torch.float64)) > 24.32


# ------------------------------------------------------------------------------------------ validation
def test_validation_errors():
    Q, E, kw = make_case(B=4, N=10, D=3)
    target = valid_targets(4, 10, kw)
    with pytest.raises(TypeError, match="Q"):
        catalog_topk(Q.double(), E, 2)
    with pytest.raises(ValueError, match="dims"):
        catalog_topk(Q, E[:, :2], 2)
    with pytest.raises(ValueError, match="k"):
        catalog_topk(Q, E, 11)
    with pytest.raises(ValueError, match="k"):
        catalog_topk(Q, E, 0)
    with pytest.raises(TypeError, match="k"):
        catalog_topk(Q, E, 2.0)
    off = torch.tensor([0, 8, 8, 8, 8])
    with pytest.raises(ValueError, match="row 0"):
        catalog_topk(Q, E, 3, exclude_offsets=off, exclude_ids=torch.arange(8))
    with pytest.raises(ValueError, match="row 0"):
        catalog_sample(Q, E, 3, 0, exclude_offsets=off, exclude_ids=torch.arange(8))
    catalog_topk(Q, E, 3, exclude_offsets=off, exclude_ids=torch.tensor([1, 1, 1, 1, 1, 1, 1, 1]))  # duplicates
    for bad_t in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="temperature"):
            catalog_logsumexp(Q, E, temperature=bad_t)
    with pytest.raises(IndexError, match="exclude_ids"):
        catalog_topk(Q, E, 2, exclude_offsets=torch.tensor([0, 1, 1, 1, 1]), exclude_ids=torch.tensor([10]))
    with pytest.raises(IndexError, match="exclude_ids"):
        catalog_topk(Q, E, 2, exclude_offsets=torch.tensor([0, 1, 1, 1, 1]), exclude_ids=torch.tensor([-1]))
    with pytest.raises(ValueError, match="exclude_offsets"):
        catalog_topk(Q, E, 2, exclude_offsets=torch.tensor([0, 2, 1, 1, 2]), exclude_ids=torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="exclude_offsets"):
        catalog_topk(Q, E, 2, exclude_offsets=torch.tensor([0, 1, 1, 1, 3]), exclude_ids=torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="both"):
        catalog_topk(Q, E, 2, exclude_offsets=torch.tensor([0, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match="bias"):
        catalog_topk(Q, E, 2, bias=torch.zeros(9))
    with pytest.raises(IndexError, match="target"):
        catalog_cross_entropy(Q, E, torch.tensor([0, 1, 10, 2]))
    with pytest.raises(IndexError, match="target"):
        catalog_cross_entropy(Q, E, torch.tensor([0, -1, 1, 2]))
    with pytest.raises(TypeError, match="target"):
        catalog_cross_entropy(Q, E, torch.tensor([0.0, 1.0, 1.0, 2.0]))
    excl_target = kw["exclude_ids"][kw["exclude_offsets"][1]:kw["exclude_offsets"][2]][:1]
    if excl_target.numel():
        t = target.clone()
        t[1] = excl_target[0]
        with pytest.raises(ValueError, match="exclusion"):
            catalog_cross_entropy(Q, E, t, **kw)
    with pytest.raises(ValueError, match="reduction"):
        catalog_cross_entropy(Q, E, target, reduction="max")
    bad = Q.clone()
    bad[1, 1] = float("nan")
    with pytest.raises(ValueError, match="Q"):
        catalog_topk(bad, E, 2)
    bad = E.clone()
    bad[3, 0] = float("inf")
    with pytest.raises(ValueError, match="E"):
        catalog_sample(Q, bad, 2, 0)
    with pytest.raises(ValueError, match="bias"):
        catalog_topk(Q, E, 2, bias=torch.full((E.shape[0],), float("nan")))
    huge = torch.full_like(E, 3e38)  # every value finite, their sum is not: the exact check must pass it
    assert catalog_topk(torch.zeros_like(Q), huge, 2)[1].shape == (Q.shape[0], 2)
    with pytest.raises(ValueError, match="overflow"):  # finite inputs whose logits are not
        catalog_logsumexp(Q * 1e30, E * 1e30)
    with pytest.raises(ValueError, match="overflow"):
        catalog_topk(Q * 1e30, E * 1e30, 2)
    with pytest.raises(TypeError, match="seed"):
        catalog_sample(Q, E, 2, 1.5)


def test_empty_batch():
    Q, E, _ = make_case(B=0, N=10, D=3, excl=False)
    s, i = catalog_topk(Q, E, 3)
    assert s.shape == (0, 3) and i.shape == (0, 3)
    assert catalog_logsumexp(Q, E).shape == (0,)
    assert catalog_cross_entropy(Q, E, torch.zeros(0, dtype=torch.int64), reduction="sum") == 0


def test_opcheck():
    Q, E, kw = make_case(B=5, N=30, D=4)
    target = valid_targets(5, 30, kw)
    ex = (kw["bias"], 0.9, kw["exclude_offsets"], kw["exclude_ids"])
    torch.library.opcheck(torch.ops.recengine.catalog_topk.default, (Q, E, 3) + ex)
    torch.library.opcheck(torch.ops.recengine.catalog_sample.default, (Q, E, 3, ref.seed_key(5)) + ex)
    torch.library.opcheck(torch.ops.recengine.catalog_logsumexp.default, (Q, E) + ex)
    torch.library.opcheck(torch.ops.recengine.catalog_cross_entropy_rows.default,
                          (Q.clone().requires_grad_(), E.clone().requires_grad_(), target,
                           kw["bias"].clone().requires_grad_(), 0.9, kw["exclude_offsets"], kw["exclude_ids"]))
    lse = ref.catalog_logsumexp_reference(Q, E, bias=kw["bias"], temperature=0.9,
                                          exclude_offsets=kw["exclude_offsets"], exclude_ids=kw["exclude_ids"])
    torch.library.opcheck(torch.ops.recengine.catalog_cross_entropy_backward.default,
                          (Q, E, target, kw["bias"], lse, torch.ones(5), torch.ones(5), 0.9,
                           kw["exclude_offsets"], kw["exclude_ids"], True, True, True))


def test_hash_is_the_documented_function():
    """Pin the counter-based hash: a changed constant would silently change every backend's draws."""
    assert ref.mix32_int(1) == 1753845952
    assert ref.seed_key(123) == 3336997240
    u = ref.hash_uniform(9, torch.tensor([[0], [5]]), torch.tensor([[0, 1, 2**31 - 1]]))
    assert bool(((u > 0) & (u < 1)).all()) and u.dtype == torch.float32
    assert ref.GUMBEL_MAX == pytest.approx(-math.log(-math.log1p(-(2.0 ** -24))))


# ------------------------------------------------------------------------------------------ Triton
def _on(dev, kw):
    return {n: v.to(dev) for n, v in kw.items()}


@pytest.mark.parametrize("excl", [True, False])
@pytest.mark.parametrize("B,N", [(19, 300), (70, 700)])  # one row block; two (of 64) and many splits
def test_triton_topk_sample_lse(excl, B, N):
    Q, E, kw = make_case(B=B, N=N, D=24, excl=excl)
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
    t_ids, t_lp = triton_policy.catalog_sample(Q.to(d), E.to(d), 4, ref.seed_key(seed), *args)
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


@pytest.mark.parametrize("B,N", [(17, 90), (70, 700)])
def test_triton_cross_entropy_backward(B, N):
    Q, E, kw = make_case(B=B, N=N, D=20)
    T = 0.9
    target = valid_targets(B, N, kw)
    leaves = [Q.double().requires_grad_(), E.double().requires_grad_(), kw["bias"].double().requires_grad_()]
    excl = {n: v for n, v in kw.items() if n != "bias"}
    rows = ref.catalog_cross_entropy_reference(*leaves[:2], target, bias=leaves[2], temperature=T, reduction="none",
                                               **excl)
    w = torch.linspace(0.5, 1.5, B, dtype=torch.float64)
    (rows * w).sum().backward()
    lse = ref.catalog_logsumexp_reference(Q, E, bias=kw["bias"], temperature=T, **excl)
    d = TRITON_DEVICE
    scale = (w.float() / T).to(d)
    dQ, dE, db = triton_policy.catalog_cross_entropy_backward(
        Q.to(d), E.to(d), target.to(d), kw["bias"].to(d), lse.to(d), scale, scale, 1 / T,
        excl["exclude_offsets"].to(d), excl["exclude_ids"].to(d), True, True, True)
    for got, leaf, name in zip((dQ, dE, db), leaves, ("dQ", "dE", "dbias")):
        assert_close(got.cpu(), leaf.grad, rtol=1e-4, atol=2e-5, name=name)


def test_cpp_sweeps_fold_bias_and_temperature():
    """The sweeps apply inv_temp = 1/T per logit, the way the ops call them on the CPU (and the Triton launchers on
    CUDA)."""
    from recengine import _C

    Q, E, kw = make_case(B=6, N=40, D=5)
    T, B = 0.6, 6
    bias, off, ex = kw["bias"], kw["exclude_offsets"], kw["exclude_ids"]
    m, s, lse = torch.full((B,), float("-inf")), torch.zeros(B), torch.empty(B)
    _C.policy_lse(Q.numpy(), E.numpy(), bias.numpy(), 1 / T, off.numpy(), ex.numpy(), m.numpy(), s.numpy(), None,
                  None)
    _C.policy_lse_finish(m.numpy(), s.numpy(), lse.numpy())
    assert_close(lse, ref.catalog_logsumexp_reference(Q, E, temperature=T, **kw), rtol=1e-5, atol=1e-5)
    for bf16 in (False, True):
        _C.policy_set_topk_bf16(bf16)
        vals, ids = torch.full((B, 4), float("-inf")), torch.full((B, 4), -1)
        count = torch.zeros(B, dtype=torch.int64)
        _C.policy_topk(Q.numpy(), E.numpy(), bias.numpy(), 1 / T, off.numpy(), ex.numpy(), vals.numpy(), ids.numpy(),
                       count.numpy())
        _C.policy_heaps_finish(vals.numpy(), ids.numpy(), None, count.numpy())
        r_vals, r_ids = ref.catalog_topk_reference(Q, E, 4, temperature=T, **kw)
        assert torch.equal(ids, r_ids)
        assert_close(vals, r_vals, rtol=1e-5, atol=1e-5)
    _C.policy_set_topk_bf16(True)
    with pytest.raises(ValueError, match="exclude_offsets"):
        _C.policy_lse(Q.numpy(), E.numpy(), None, 1.0, (off + 1).numpy(), ex.numpy(), m.numpy(), s.numpy(), None,
                      None)
    with pytest.raises(ValueError, match="bias"):
        _C.policy_lse(Q.numpy(), E.numpy(), bias[:-1].numpy(), 1.0, None, None, m.numpy(), s.numpy(), None, None)


@pytest.fixture(params=["blas", "portable"])
def gemm_path(request):
    """Both tile GEMMs of the C++ sweeps: the process's BLAS (sgemm_) and the portable loop."""
    from recengine import _C

    _C.policy_force_portable_gemm(request.param == "portable")
    yield request.param
    _C.policy_force_portable_gemm(False)


def test_sweeps_on_both_gemm_paths(small_blocks, gemm_path):
    Q, E, kw = make_case(B=70, N=1500, D=13)  # several row chunks and item blocks, with tails
    T = 0.9
    s, i = catalog_topk(Q, E, 9, temperature=T, **kw)
    r_s, r_i = ref.catalog_topk_reference(Q, E, 9, temperature=T, **kw)
    assert torch.equal(i, r_i)
    assert_close(s, r_s, rtol=1e-5, atol=1e-5)
    assert_close(catalog_logsumexp(Q, E, temperature=T, **kw),
                 ref.catalog_logsumexp_reference(Q, E, temperature=T, **kw), rtol=1e-5, atol=1e-5)
    ids, lp = catalog_sample(Q, E, 6, 99, temperature=T, **kw)
    r_ids, r_lp = ref.catalog_sample_reference(Q, E, 6, 99, temperature=T, **kw)
    assert torch.equal(ids, r_ids)
    assert_close(lp, r_lp, rtol=1e-5, atol=1e-5)
    target = valid_targets(70, 1500, kw)
    leaves = [Q.clone().requires_grad_(), E.clone().requires_grad_(), kw["bias"].clone().requires_grad_()]
    r_leaves = [Q.double().requires_grad_(), E.double().requires_grad_(), kw["bias"].double().requires_grad_()]
    excl = {n: v for n, v in kw.items() if n != "bias"}
    catalog_cross_entropy(*leaves[:2], target, bias=leaves[2], temperature=T, **excl).backward()
    ref.catalog_cross_entropy_reference(*r_leaves[:2], target, bias=r_leaves[2], temperature=T, **excl).backward()
    for got, want, name in zip(leaves, r_leaves, ("dQ", "dE", "dbias")):
        assert_close(got.grad, want.grad, rtol=1e-4, atol=2e-6, name=name)


# ------------------------------------------------------------------ top-k through the bf16 prefilter
@pytest.fixture(params=["fp32", "bf16"])
def topk_path(request):
    """Both C++ top-k sweeps: float32 tiles, and the exact bf16-prefiltered sweep (AVX512-BF16 CPUs only,
    used for 48+ rows)."""
    from recengine import _C

    if request.param == "bf16" and not _C.policy_topk_bf16():
        pytest.skip("this CPU has no AVX512-BF16 (the float32 sweep is the one in use)")
    _C.policy_set_topk_bf16(request.param == "bf16")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the bf16 sweep is chosen only where its row groups can keep the threads busy
    yield request.param
    torch.set_num_threads(threads)
    _C.policy_set_topk_bf16(True)


@pytest.mark.parametrize("B,N,D", [(48, 301, 24), (64, 500, 64), (130, 997, 33), (70, 50, 1), (65, 20, 70)])
@pytest.mark.parametrize("k", [1, 5, 40])
def test_topk_bf16_prefilter_matches_reference(topk_path, B, N, D, k):
    k = min(k, N - 8)  # rows exclude at most 8 items
    for bias, excl, T in ((True, True, 0.7), (False, False, 1.0)):
        Q, E, kw = make_case(B=B, N=N, D=D, bias=bias, excl=excl, seed=B + N + D)
        scores, ids = catalog_topk(Q, E, k, temperature=T, **kw)
        r_scores, r_ids = ref.catalog_topk_reference(Q, E, k, temperature=T, **kw)
        assert torch.equal(ids, r_ids)
        assert_close(scores, r_scores, rtol=1e-5, atol=1e-5, name="scores")


def test_topk_bf16_prefilter_resolves_what_bf16_cannot(topk_path):
    """Items whose scores differ far below bf16's resolution (relative 2^-8) but far above float32's: the
    prefilter's bound must send them all to the exact float32 rescoring, so the order is the true one."""
    g = torch.Generator().manual_seed(11)
    B, N, D = 64, 400, 32
    base = torch.randn(D, generator=g)
    E = base + torch.randn(N, D, generator=g) * 1e-3  # every item within 1e-3 of the same vector
    Q = torch.randn(B, D, generator=g)
    Q[5] = 0.0  # a row where every item ties exactly: lowest ids first
    truth = Q.double() @ E.double().T
    for k in (1, 10):
        scores, ids = catalog_topk(Q, E, k)
        r_scores, _ = ref.catalog_topk_reference(Q, E, k)
        assert torch.equal(ids[5], torch.arange(k))
        top = truth.topk(k + 1, dim=1)
        clear = (top.values[:, :-1] - top.values[:, 1:]).min(1).values > 2e-5  # well above float32 rounding
        clear[5] = False
        assert int(clear.sum()) > B // 4
        assert torch.equal(ids[clear], top.indices[clear, :k])
        # elsewhere float32 rounding may order near-ties either way, but never lose a true top-k item
        assert bool((truth.gather(1, ids) >= top.values[:, k - 1:k] - 1e-5).all())
        assert_close(scores, r_scores, rtol=1e-5, atol=1e-5, name="scores")


def test_topk_bf16_prefilter_splits_the_catalog_for_small_batches(topk_path):
    """Fewer row groups than threads: the bf16 sweep also splits the catalog (each split with heaps of its
    own, merged at the end). One group of 50 rows on 2 threads over 9000 items makes two splits."""
    torch.set_num_threads(2)
    Q, E, kw = make_case(B=50, N=9000, D=16, seed=5)
    for k in (1, 7, 40):
        scores, ids = catalog_topk(Q, E, k, temperature=0.8, **kw)
        r_scores, r_ids = ref.catalog_topk_reference(Q, E, k, temperature=0.8, **kw)
        assert torch.equal(ids, r_ids)
        assert_close(scores, r_scores, rtol=1e-5, atol=1e-5)
    g = torch.Generator().manual_seed(6)
    E = torch.randint(-3, 4, (10, 8), generator=g).float().repeat(900, 1)  # ties across the split boundary
    Q = torch.randint(-3, 4, (50, 8), generator=g).float()
    for k in (1, 9, 25):
        scores, ids = catalog_topk(Q, E, k)
        r_scores, r_ids = ref.catalog_topk_reference(Q, E, k)
        assert torch.equal(ids, r_ids) and torch.equal(scores, r_scores)


def test_topk_bf16_prefilter_ties_nonfinite_and_layout(topk_path):
    g = torch.Generator().manual_seed(12)
    base = torch.randint(-3, 4, (10, 6), generator=g).float()
    E = base.repeat(31, 1)  # exact ties across the whole catalog (small integers: exact in bf16 too)
    Q = torch.randint(-3, 4, (50, 6), generator=g).float()
    for k in (1, 7, 33):
        scores, ids = catalog_topk(Q, E, k)
        r_scores, r_ids = ref.catalog_topk_reference(Q, E, k)
        assert torch.equal(ids, r_ids) and torch.equal(scores, r_scores)
    # huge scores that overflow bf16 products: rescored exactly, and the op reports the overflow
    Q2 = torch.randn(50, 8, generator=g)
    E2 = torch.randn(90, 8, generator=g)
    E2[17] = 3e38
    with pytest.raises(ValueError, match="overflow"):
        catalog_topk(Q2, E2, 3)
    # non-contiguous inputs and int32 exclusions
    Q3, E3, kw = make_case(B=60, N=200, D=16, ids_dtype=torch.int32)
    Qt, Et = Q3.t().contiguous().t(), torch.stack([E3, E3], 2)[:, :, 0]
    s1, i1 = catalog_topk(Qt, Et, 6, **kw)
    s2, i2 = ref.catalog_topk_reference(Q3, E3, 6, **kw)
    assert torch.equal(i1, i2)
    assert_close(s1, s2, rtol=1e-5, atol=1e-5)
