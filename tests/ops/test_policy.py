"""recengine.ops policy family: the public catalog ops (on the CPU: the C++ sweeps, on each of their paths)
against the plain-PyTorch references. The Triton launchers are tested in tests/kernels/test_policy.py."""

import math

import pytest
import torch

from recengine.ops import catalog_cross_entropy, catalog_logsumexp, catalog_sample, catalog_topk
from recengine.ops.counter_hash import seed_key
from recengine.reference import policy as ref
from tests.helpers import assert_close, make_catalog_case, valid_catalog_targets


@pytest.fixture
def small_blocks():
    """Tiles of 7 rows x 50 items in the C++ sweeps, so small inputs walk many row chunks and item blocks
    (with tails)."""
    from recengine._native import cpu_ops

    _C = cpu_ops()

    _C.policy_set_sweep_shape(7, 50)
    yield
    _C.policy_set_sweep_shape(0, 0)


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
    Q, E, kw = make_catalog_case(**cfg)
    scores, ids = catalog_topk(Q, E, k, temperature=T, **kw)
    r_scores, r_ids = ref.catalog_topk_reference(Q, E, k, temperature=T, **kw)
    assert ids.dtype == torch.int64 and scores.dtype == torch.float32
    assert torch.equal(ids, r_ids)
    assert_close(scores, r_scores, rtol=1e-5, atol=1e-5, name="scores")


def test_topk_k_near_catalog_size(small_blocks):
    Q, E, kw = make_catalog_case(B=6, N=60, D=8, excl=True)
    allowed = 60 - max(
        len(set(kw["exclude_ids"][kw["exclude_offsets"][b] : kw["exclude_offsets"][b + 1]].tolist())) for b in range(6)
    )
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
    Q, E, kw = make_catalog_case(ids_dtype=torch.int32)
    Qt = Q.t().contiguous().t()  # same values, column-major
    Et = torch.stack([E, E], 2)[:, :, 0]  # same values, strided
    assert not Qt.is_contiguous() or not Et.is_contiguous()
    s1, i1 = catalog_topk(Qt, Et, 6, **kw)
    s2, i2 = ref.catalog_topk_reference(Q, E, 6, **kw)
    assert torch.equal(i1, i2)
    assert_close(s1, s2, rtol=1e-5, atol=1e-5)


def test_topk_excluded_items_never_returned(small_blocks):
    Q, E, kw = make_catalog_case(B=12, N=40, D=6)
    _, ids = catalog_topk(Q, E, 30, **kw)
    off, ex = kw["exclude_offsets"], kw["exclude_ids"]
    for b in range(12):
        assert not set(ids[b].tolist()) & set(ex[off[b] : off[b + 1]].tolist())


@pytest.mark.parametrize("B", [1, 3, 8, 9, 16, 47])
@pytest.mark.parametrize("D", [20, 64])
def test_topk_small_batches_split_the_catalog(B, D):
    """Below 48 rows the threads split the catalog (automatic blocks of up to 4096 items, so two here, merged at
    the end); up to 8 rows read the table with the direct dot products, 16 items at a time plus a tail."""
    Q, E, kw = make_catalog_case(B=B, N=9001, D=D, seed=B + D)
    for k in (1, 10):
        scores, ids = catalog_topk(Q, E, k, **kw)
        r_scores, r_ids = ref.catalog_topk_reference(Q, E, k, **kw)
        assert torch.equal(ids, r_ids)
        assert_close(scores, r_scores, rtol=1e-5, atol=1e-5)


def test_topk_small_batch_ties_across_blocks_go_to_lower_id():
    E = torch.ones(9000, 16)  # every item ties, in three blocks that different threads may score
    Q = torch.ones(2, 16)
    scores, ids = catalog_topk(Q, E, 20, bias=torch.zeros(9000))
    assert torch.equal(ids, torch.arange(20).expand(2, 20))
    assert bool(scores.eq(16.0).all())


def test_default_blocking():
    Q, E, kw = make_catalog_case(B=33, N=9000, D=16)  # the automatic tiles: 3 row chunks, 2 item blocks
    s, i = catalog_topk(Q, E, 10, **kw)
    r_s, r_i = ref.catalog_topk_reference(Q, E, 10, **kw)
    assert torch.equal(i, r_i)
    assert_close(s, r_s, rtol=1e-5, atol=1e-5)


# -------------------------------------------------------------------------------- logsumexp / CE
@pytest.mark.parametrize("cfg", CONFIGS)
def test_logsumexp_matches_reference(small_blocks, cfg):
    cfg = dict(cfg)
    T = cfg.pop("temperature")
    Q, E, kw = make_catalog_case(**cfg)
    assert_close(
        catalog_logsumexp(Q, E, temperature=T, **kw),
        ref.catalog_logsumexp_reference(Q, E, temperature=T, **kw),
        rtol=1e-5,
        atol=1e-5,
    )


def test_logsumexp_wide_logits_and_fully_excluded_row(small_blocks):
    Q, E, _ = make_catalog_case(B=3, N=20, D=4, scale=30.0)  # logits of several hundred: needs the running max
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
    Q, E, kw = make_catalog_case(**cfg)
    target = valid_catalog_targets(Q.shape[0], E.shape[0], kw).to(torch.int32)
    leaves = {"Q": Q.clone().requires_grad_(), "E": E.clone().requires_grad_()}
    r_leaves = {"Q": Q.double().requires_grad_(), "E": E.double().requires_grad_()}
    if "bias" in kw:
        leaves["bias"] = kw["bias"].clone().requires_grad_()
        r_leaves["bias"] = kw["bias"].double().requires_grad_()
    excl = {n: v for n, v in kw.items() if n != "bias"}
    loss = catalog_cross_entropy(
        leaves["Q"], leaves["E"], target, bias=leaves.get("bias"), temperature=T, reduction=reduction, **excl
    )
    r_loss = ref.catalog_cross_entropy_reference(
        r_leaves["Q"], r_leaves["E"], target, bias=r_leaves.get("bias"), temperature=T, reduction=reduction, **excl
    )
    assert_close(loss, r_loss, rtol=1e-5, atol=1e-5, name="loss")
    w = torch.linspace(0.5, 1.5, loss.numel()).reshape(loss.shape)  # a non-uniform upstream gradient
    (loss * w).sum().backward()
    (r_loss * w.double()).sum().backward()
    for name in leaves:
        assert_close(leaves[name].grad, r_leaves[name].grad, rtol=1e-4, atol=2e-5, name=f"d{name}")


def test_cross_entropy_grad_only_where_asked(small_blocks):
    Q, E, kw = make_catalog_case(bias=True, excl=False)
    target = valid_catalog_targets(Q.shape[0], E.shape[0], kw)
    Qg = Q.clone().requires_grad_()
    catalog_cross_entropy(Qg, E, target, **kw).backward()
    r = Q.double().requires_grad_()
    ref.catalog_cross_entropy_reference(r, E.double(), target, bias=kw["bias"].double()).backward()
    assert_close(Qg.grad, r.grad, rtol=1e-4, atol=2e-5)
    assert E.grad is None


def test_cross_entropy_backward_is_the_same_bits_every_call(small_blocks):
    """The backward's item blocks are spread over the threads and each thread sums its blocks' dQ terms into a copy
    of its own: which thread takes which blocks must not depend on timing, or dQ's rounding (and every training run
    that uses it) changes from run to run at a fixed seed and thread count."""
    torch.manual_seed(0)
    Q, E = torch.randn(40, 16), torch.randn(3000, 16)  # 60 item blocks of 50: many per thread
    target = torch.randint(0, 3000, (40,))

    def grads():
        q, e = Q.clone().requires_grad_(), E.clone().requires_grad_()
        catalog_cross_entropy(q, e, target).backward()
        return q.grad, e.grad

    first = grads()
    for _ in range(20):
        again = grads()
        assert torch.equal(again[0], first[0]) and torch.equal(again[1], first[1])


def test_reference_cross_entropy_gradcheck():
    """The reference's gradient (the truth the op's backward is compared to) against finite differences."""
    Q, E, kw = make_catalog_case(B=4, N=9, D=3)
    target = valid_catalog_targets(4, 9, kw)
    args = (Q.double().requires_grad_(), E.double().requires_grad_(), kw["bias"].double().requires_grad_())
    fn = lambda q, e, b: ref.catalog_cross_entropy_reference(  # noqa: E731
        q,
        e,
        target,
        bias=b,
        temperature=0.8,
        exclude_offsets=kw["exclude_offsets"],
        exclude_ids=kw["exclude_ids"],
        reduction="none",
    )
    assert torch.autograd.gradcheck(fn, args)


def test_cross_entropy_op_finite_differences(small_blocks):
    """The op's own float32 gradient against central differences of its own loss (in float64 sums)."""
    Q, E, kw = make_catalog_case(B=3, N=40, D=4)
    target = valid_catalog_targets(3, 40, kw)
    Qg = Q.clone().requires_grad_()
    catalog_cross_entropy(Qg, E, target, reduction="sum", **kw).backward()
    eps = 1e-2
    for idx in [(0, 0), (1, 2), (2, 3)]:
        plus, minus = Q.clone(), Q.clone()
        plus[idx] += eps
        minus[idx] -= eps
        fd = (
            catalog_cross_entropy(plus, E, target, reduction="sum", **kw).double()
            - catalog_cross_entropy(minus, E, target, reduction="sum", **kw).double()
        ) / (2 * eps)
        assert abs(float(fd) - float(Qg.grad[idx])) < 2e-3 * max(1.0, abs(float(fd)))


# ------------------------------------------------------------------------------------------ sampling
@pytest.mark.parametrize("cfg", CONFIGS)
def test_sample_matches_reference(small_blocks, cfg):
    cfg = dict(cfg)
    T = cfg.pop("temperature")
    Q, E, kw = make_catalog_case(**cfg)
    for seed in (0, 12345, 2**40 + 7, -3):
        ids, log_probs = catalog_sample(Q, E, 4, seed, temperature=T, **kw)
        r_ids, r_lp = ref.catalog_sample_reference(Q, E, 4, seed, temperature=T, **kw)
        assert torch.equal(ids, r_ids)
        assert_close(log_probs, r_lp, rtol=1e-5, atol=1e-5, name="log_probs")


def test_sample_pruned_path_matches_reference(small_blocks):
    """Wide logits: most items are skipped by the exact filters; the draw must not change."""
    Q, E, kw = make_catalog_case(B=16, N=500, D=8, scale=3.0)
    for seed in range(3):
        ids, lp = catalog_sample(Q, E, 10, seed, **kw)
        r_ids, r_lp = ref.catalog_sample_reference(Q, E, 10, seed, **kw)
        assert torch.equal(ids, r_ids)
        assert_close(lp, r_lp, rtol=1e-5, atol=1e-4)


def test_sample_same_seed_same_draw_different_seeds_differ(small_blocks):
    Q, E, kw = make_catalog_case(B=30, N=200, D=8)
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
        assert not set(row) & set(ex[off[b_] : off[b_ + 1]].tolist())


def test_sample_excluded_never_drawn_when_almost_everything_excluded(small_blocks):
    Q, E, _ = make_catalog_case(B=200, N=12, D=4, excl=False)
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
def _validation_case():
    """B=4 users, N=10 items, D=3, with a bias, exclusion lists and valid targets."""
    Q, E, kw = make_catalog_case(B=4, N=10, D=3)
    return Q, E, kw, valid_catalog_targets(4, 10, kw)


_FULL_ROW0 = torch.tensor([0, 8, 8, 8, 8])  # row 0 excludes 8 of the 10 items


def _nan_at(t, index):
    bad = t.clone()
    bad[index] = float("nan")
    return bad


def _inf_at(t, index):
    bad = t.clone()
    bad[index] = float("inf")
    return bad


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda Q, E, kw, t: catalog_topk(Q.double(), E, 2), TypeError, "Q"),
        (lambda Q, E, kw, t: catalog_topk(Q, E[:, :2], 2), ValueError, "dims"),
        (lambda Q, E, kw, t: catalog_topk(Q, E, 11), ValueError, "k"),
        (lambda Q, E, kw, t: catalog_topk(Q, E, 0), ValueError, "k"),
        (lambda Q, E, kw, t: catalog_topk(Q, E, 2.0), TypeError, "k"),
        (
            lambda Q, E, kw, t: catalog_topk(Q, E, 3, exclude_offsets=_FULL_ROW0, exclude_ids=torch.arange(8)),
            ValueError,
            "row 0",
        ),
        (
            lambda Q, E, kw, t: catalog_sample(Q, E, 3, 0, exclude_offsets=_FULL_ROW0, exclude_ids=torch.arange(8)),
            ValueError,
            "row 0",
        ),
        (lambda Q, E, kw, t: catalog_logsumexp(Q, E, temperature=0.0), ValueError, "temperature"),
        (lambda Q, E, kw, t: catalog_logsumexp(Q, E, temperature=-1.0), ValueError, "temperature"),
        (lambda Q, E, kw, t: catalog_logsumexp(Q, E, temperature=float("nan")), ValueError, "temperature"),
        (lambda Q, E, kw, t: catalog_logsumexp(Q, E, temperature=float("inf")), ValueError, "temperature"),
        (
            lambda Q, E, kw, t: catalog_topk(
                Q, E, 2, exclude_offsets=torch.tensor([0, 1, 1, 1, 1]), exclude_ids=torch.tensor([10])
            ),
            IndexError,
            "exclude_ids",
        ),
        (
            lambda Q, E, kw, t: catalog_topk(
                Q, E, 2, exclude_offsets=torch.tensor([0, 1, 1, 1, 1]), exclude_ids=torch.tensor([-1])
            ),
            IndexError,
            "exclude_ids",
        ),
        (
            lambda Q, E, kw, t: catalog_topk(
                Q, E, 2, exclude_offsets=torch.tensor([0, 2, 1, 1, 2]), exclude_ids=torch.tensor([1, 2])
            ),
            ValueError,
            "exclude_offsets",
        ),
        (
            lambda Q, E, kw, t: catalog_topk(
                Q, E, 2, exclude_offsets=torch.tensor([0, 1, 1, 1, 3]), exclude_ids=torch.tensor([1, 2])
            ),
            ValueError,
            "exclude_offsets",
        ),
        (lambda Q, E, kw, t: catalog_topk(Q, E, 2, exclude_offsets=torch.tensor([0, 0, 0, 0, 0])), ValueError, "both"),
        (lambda Q, E, kw, t: catalog_topk(Q, E, 2, bias=torch.zeros(9)), ValueError, "bias"),
        (lambda Q, E, kw, t: catalog_cross_entropy(Q, E, torch.tensor([0, 1, 10, 2])), IndexError, "target"),
        (lambda Q, E, kw, t: catalog_cross_entropy(Q, E, torch.tensor([0, -1, 1, 2])), IndexError, "target"),
        (lambda Q, E, kw, t: catalog_cross_entropy(Q, E, torch.tensor([0.0, 1.0, 1.0, 2.0])), TypeError, "target"),
        (lambda Q, E, kw, t: catalog_cross_entropy(Q, E, t, reduction="max"), ValueError, "reduction"),
        (lambda Q, E, kw, t: catalog_topk(_nan_at(Q, (1, 1)), E, 2), ValueError, "Q"),
        (lambda Q, E, kw, t: catalog_sample(Q, _inf_at(E, (3, 0)), 2, 0), ValueError, "E"),
        (lambda Q, E, kw, t: catalog_topk(Q, E, 2, bias=torch.full((E.shape[0],), float("nan"))), ValueError, "bias"),
        (lambda Q, E, kw, t: catalog_logsumexp(Q * 1e30, E * 1e30), ValueError, "overflow"),  # finite inputs,
        (lambda Q, E, kw, t: catalog_topk(Q * 1e30, E * 1e30, 2), ValueError, "overflow"),  # logits that are not
        (lambda Q, E, kw, t: catalog_sample(Q, E, 2, 1.5), TypeError, "seed"),
    ],
)
def test_bad_input_raises_naming_the_argument(call, exc, match):
    Q, E, kw, target = _validation_case()
    with pytest.raises(exc, match=match):
        call(Q, E, kw, target)


def test_excluded_target_is_rejected():
    Q, E, kw, target = _validation_case()
    excl_target = kw["exclude_ids"][kw["exclude_offsets"][1] : kw["exclude_offsets"][2]][:1]
    assert excl_target.numel(), "the case must exclude an item in row 1"
    target[1] = excl_target[0]
    with pytest.raises(ValueError, match="exclusion"):
        catalog_cross_entropy(Q, E, target, **kw)


def test_duplicate_exclusions_count_once():
    Q, E, _, _ = _validation_case()
    _, ids = catalog_topk(Q, E, 3, exclude_offsets=_FULL_ROW0, exclude_ids=torch.tensor([1, 1, 1, 1, 1, 1, 1, 1]))
    assert 1 not in ids[0].tolist() and ids.shape == (4, 3)


def test_finite_inputs_whose_sum_overflows_pass_the_finiteness_check():
    Q, E, _, _ = _validation_case()
    huge = torch.full_like(E, 3e38)  # every value finite, their sum is not: the exact check must pass it
    assert catalog_topk(torch.zeros_like(Q), huge, 2)[1].shape == (Q.shape[0], 2)


def test_empty_batch():
    Q, E, _ = make_catalog_case(B=0, N=10, D=3, excl=False)
    s, i = catalog_topk(Q, E, 3)
    assert s.shape == (0, 3) and i.shape == (0, 3)
    assert catalog_logsumexp(Q, E).shape == (0,)
    assert catalog_cross_entropy(Q, E, torch.zeros(0, dtype=torch.int64), reduction="sum") == 0


def test_opcheck():
    Q, E, kw = make_catalog_case(B=5, N=30, D=4)
    target = valid_catalog_targets(5, 30, kw)
    ex = (kw["bias"], 0.9, kw["exclude_offsets"], kw["exclude_ids"])
    torch.library.opcheck(torch.ops.recengine.catalog_topk.default, (Q, E, 3) + ex)
    torch.library.opcheck(torch.ops.recengine.catalog_sample.default, (Q, E, 3, seed_key(5)) + ex)
    torch.library.opcheck(torch.ops.recengine.catalog_logsumexp.default, (Q, E) + ex)
    torch.library.opcheck(
        torch.ops.recengine.catalog_cross_entropy_rows.default,
        (
            Q.clone().requires_grad_(),
            E.clone().requires_grad_(),
            target,
            kw["bias"].clone().requires_grad_(),
            0.9,
            kw["exclude_offsets"],
            kw["exclude_ids"],
        ),
    )
    lse = ref.catalog_logsumexp_reference(
        Q, E, bias=kw["bias"], temperature=0.9, exclude_offsets=kw["exclude_offsets"], exclude_ids=kw["exclude_ids"]
    )
    torch.library.opcheck(
        torch.ops.recengine.catalog_cross_entropy_backward.default,
        (
            Q,
            E,
            target,
            kw["bias"],
            lse,
            torch.ones(5),
            torch.ones(5),
            0.9,
            kw["exclude_offsets"],
            kw["exclude_ids"],
            True,
            True,
            True,
        ),
    )


def test_hash_is_the_documented_function():
    """Pin the counter-based hash: a changed constant would silently change every backend's draws."""
    u = ref.hash_uniform(9, torch.tensor([[0], [5]]), torch.tensor([[0, 1, 2**31 - 1]]))
    assert bool(((u > 0) & (u < 1)).all()) and u.dtype == torch.float32
    assert ref.GUMBEL_MAX == pytest.approx(-math.log(-math.log1p(-(2.0**-24))))


# ------------------------------------------------------------------------------------------ Triton


@pytest.fixture(params=["blas", "portable"])
def gemm_path(request):
    """Both tile GEMMs of the C++ sweeps: the process's BLAS (sgemm_) and the portable loop."""
    from recengine._native import cpu_ops

    _C = cpu_ops()

    _C.policy_force_portable_gemm(request.param == "portable")
    yield request.param
    _C.policy_force_portable_gemm(False)


def test_sweeps_on_both_gemm_paths(small_blocks, gemm_path):
    Q, E, kw = make_catalog_case(B=70, N=1500, D=13)  # several row chunks and item blocks, with tails
    T = 0.9
    s, i = catalog_topk(Q, E, 9, temperature=T, **kw)
    r_s, r_i = ref.catalog_topk_reference(Q, E, 9, temperature=T, **kw)
    assert torch.equal(i, r_i)
    assert_close(s, r_s, rtol=1e-5, atol=1e-5)
    assert_close(
        catalog_logsumexp(Q, E, temperature=T, **kw),
        ref.catalog_logsumexp_reference(Q, E, temperature=T, **kw),
        rtol=1e-5,
        atol=1e-5,
    )
    ids, lp = catalog_sample(Q, E, 6, 99, temperature=T, **kw)
    r_ids, r_lp = ref.catalog_sample_reference(Q, E, 6, 99, temperature=T, **kw)
    assert torch.equal(ids, r_ids)
    assert_close(lp, r_lp, rtol=1e-5, atol=1e-5)
    target = valid_catalog_targets(70, 1500, kw)
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
    from recengine._native import cpu_ops

    _C = cpu_ops()

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
        Q, E, kw = make_catalog_case(B=B, N=N, D=D, bias=bias, excl=excl, seed=B + N + D)
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
        assert bool((truth.gather(1, ids) >= top.values[:, k - 1 : k] - 1e-5).all())
        assert_close(scores, r_scores, rtol=1e-5, atol=1e-5, name="scores")


def test_topk_bf16_prefilter_splits_the_catalog_for_small_batches(topk_path):
    """Fewer row groups than threads: the bf16 sweep also splits the catalog (each split with heaps of its
    own, merged at the end). One group of 50 rows on 2 threads over 9000 items makes two splits."""
    torch.set_num_threads(2)
    Q, E, kw = make_catalog_case(B=50, N=9000, D=16, seed=5)
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
    Q3, E3, kw = make_catalog_case(B=60, N=200, D=16, ids_dtype=torch.int32)
    Qt, Et = Q3.t().contiguous().t(), torch.stack([E3, E3], 2)[:, :, 0]
    s1, i1 = catalog_topk(Qt, Et, 6, **kw)
    s2, i2 = ref.catalog_topk_reference(Q3, E3, 6, **kw)
    assert torch.equal(i1, i2)
    assert_close(s1, s2, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------- torch.compile / export
def _catalog_calls():
    """Each public op as a function of (Q, E, exclude_offsets, exclude_ids), with a name."""
    target = torch.tensor([1, 2, 4])
    return {
        "topk": lambda Q, E, off, ex: catalog_topk(Q, E, 4, exclude_offsets=off, exclude_ids=ex),
        "sample": lambda Q, E, off, ex: catalog_sample(Q, E, 3, 11, exclude_offsets=off, exclude_ids=ex),
        "logsumexp": lambda Q, E, off, ex: catalog_logsumexp(Q, E, exclude_offsets=off, exclude_ids=ex),
        "cross_entropy": lambda Q, E, off, ex: catalog_cross_entropy(Q, E, target, exclude_offsets=off, exclude_ids=ex),
    }


class _CatalogCall(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, Q, E, exclude_offsets, exclude_ids):
        return self.fn(Q, E, exclude_offsets, exclude_ids)


def _catalog_args(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(3, 8, generator=g),
        torch.randn(40, 8, generator=g),
        torch.tensor([0, 2, 2, 3]),
        torch.tensor([5, 7, 9]),
    )


@pytest.mark.parametrize("name", list(_catalog_calls()))
def test_public_op_compiles_without_graph_breaks(name):
    explanation = torch._dynamo.explain(_catalog_calls()[name])(*_catalog_args())
    torch._dynamo.reset()
    assert explanation.graph_break_count == 0, explanation.break_reasons


@pytest.mark.parametrize("name", list(_catalog_calls()))
def test_exported_public_op_matches_eager(name):
    module = _CatalogCall(_catalog_calls()[name])
    exported = torch.export.export(module, _catalog_args(0))
    other = _catalog_args(1)
    got, want = exported.module()(*other), module(*other)
    for g, w in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
        assert torch.equal(g, w)


def _spoil(kind: str, args):
    Q, E, off, ex = (a.clone() for a in args)
    if kind == "exclude_id":
        ex[1] = 40  # the catalog has 40 items
        return (Q, E, off, ex), IndexError, "exclude_ids: id 40"
    Q[1, 3] = float("nan")
    return (Q, E, off, ex), ValueError, "Q: holds NaN"


@pytest.mark.parametrize("mode", ["eager", "compiled", "exported"])
@pytest.mark.parametrize("kind", ["exclude_id", "nan"])
@pytest.mark.parametrize("name", list(_catalog_calls()))
def test_bad_values_raise_in_every_mode(name, kind, mode):
    module = _CatalogCall(_catalog_calls()[name])
    if mode == "compiled":
        run = torch.compile(module, fullgraph=True, backend="aot_eager")
    elif mode == "exported":
        run = torch.export.export(module, _catalog_args()).module()
    else:
        run = module
    bad, exc, match = _spoil(kind, _catalog_args())
    with pytest.raises(exc, match=match):
        run(*bad)
    torch._dynamo.reset()


@pytest.mark.parametrize("mode", ["compiled", "exported"])
def test_bad_target_raises_in_graph(mode):
    def fn(Q, E, target):
        return catalog_cross_entropy(Q, E, target)

    Q, E, _, _ = _catalog_args()
    if mode == "compiled":
        run = torch.compile(fn, fullgraph=True, backend="aot_eager")
    else:

        class Loss(torch.nn.Module):
            def forward(self, Q, E, target):
                return fn(Q, E, target)

        run = torch.export.export(Loss(), (Q, E, torch.tensor([0, 1, 2]))).module()
    with pytest.raises(IndexError, match="target: id 40 of row 2"):
        run(Q, E, torch.tensor([0, 1, 40]))
    torch._dynamo.reset()
