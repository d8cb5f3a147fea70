"""Property tests: the catalog ops against recengine.reference over random users, catalogs, biases,
temperatures, exclusion lists (duplicates, empty rows) and tied scores; top-k ties compared as sets. Batches
of 48+ rows take the bf16 top-k path on CPUs that have it."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recengine.ops import catalog_cross_entropy, catalog_logsumexp, catalog_sample, catalog_topk
from recengine.reference.policy import (
    catalog_cross_entropy_reference,
    catalog_logits,
    catalog_logsumexp_reference,
    catalog_sample_reference,
)

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True)


@st.composite
def catalogs(draw, max_rows: int = 6):
    """(Q, E, options dict: bias, temperature, exclude_offsets, exclude_ids) with every row keeping >= 2 items."""
    rows = draw(st.one_of(st.integers(1, max_rows), st.just(64)))
    items = draw(st.integers(2, 40))
    dim = draw(st.integers(1, 16))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    if draw(st.booleans()):  # coarse values: many exactly tied scores
        Q = torch.randint(-2, 3, (rows, dim), generator=g).float()
        E = torch.randint(-1, 2, (items, dim), generator=g).float()
    else:
        Q, E = torch.randn(rows, dim, generator=g), torch.randn(items, dim, generator=g)
    opts = {"temperature": draw(st.sampled_from([1.0, 0.5, 3.0]))}
    if draw(st.booleans()):
        opts["bias"] = torch.randn(items, generator=g)
    if draw(st.booleans()):
        # duplicates and empty rows included; at most items - 2 entries, so every row keeps 2 items
        lists = [draw(st.lists(st.integers(0, items - 1), max_size=items - 2)) for _ in range(rows)]
        opts["exclude_offsets"] = torch.tensor(
            [0, *torch.tensor([len(x) for x in lists]).cumsum(0).tolist()], dtype=torch.int64
        )
        opts["exclude_ids"] = torch.tensor([i for x in lists for i in x], dtype=torch.int64)
    return Q, E, opts


def _allowed(Q, E, opts) -> int:
    logits = catalog_logits(Q.double(), E.double(), **_double(opts))
    return int(torch.isfinite(logits).sum(1).min())


def _double(opts):
    return {k: (v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v) for k, v in opts.items()}


@SETTINGS
@given(catalogs(), st.integers(1, 5))
def test_topk_matches_the_reference_with_ties_as_sets(case, k):
    Q, E, opts = case
    k = min(k, _allowed(Q, E, opts))
    scores, ids = catalog_topk(Q, E, k, **opts)
    logits = catalog_logits(Q.double(), E.double(), **_double(opts))
    want = logits.topk(k, dim=1).values
    assert scores.shape == ids.shape == (Q.shape[0], k) and ids.dtype == torch.int64
    torch.testing.assert_close(scores.double(), want, rtol=1e-4, atol=1e-4)
    # every returned id is allowed, distinct, and has the score it is reported with (ties: any of the tied set)
    assert bool(torch.isfinite(logits.gather(1, ids)).all())
    assert all(len(set(r)) == k for r in ids.tolist())
    torch.testing.assert_close(logits.gather(1, ids), scores.double(), rtol=1e-4, atol=1e-4)
    assert bool((scores[:, :-1] >= scores[:, 1:]).all())


@SETTINGS
@given(catalogs(), st.integers(1, 4), st.integers(-(2**40), 2**40))
def test_sample_matches_the_reference(case, k, seed):
    Q, E, opts = case
    k = min(k, _allowed(Q, E, opts))
    ids, log_probs = catalog_sample(Q, E, k, seed, **opts)
    ref_ids, ref_lp = catalog_sample_reference(Q, E, k, seed, **opts)
    logits = catalog_logits(Q.double(), E.double(), **_double(opts))
    assert bool(torch.isfinite(logits.gather(1, ids)).all()) and all(len(set(r)) == k for r in ids.tolist())
    torch.testing.assert_close(log_probs.double(), torch.log_softmax(logits, 1).gather(1, ids), rtol=1e-4, atol=1e-4)
    # the same draw as the reference, up to perturbed keys that tie within float rounding
    assert (ids == ref_ids).float().mean() >= 0.9


@SETTINGS
@given(catalogs())
def test_logsumexp_matches_the_reference(case):
    Q, E, opts = case
    got = catalog_logsumexp(Q, E, **opts)
    want = catalog_logsumexp_reference(Q.double(), E.double(), **_double(opts))
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)


@SETTINGS
@given(catalogs(), st.sampled_from(["mean", "sum", "none"]), st.data())
def test_cross_entropy_and_its_gradients_match_the_reference(case, reduction, data):
    Q, E, opts = case
    logits = catalog_logits(Q.double(), E.double(), **_double(opts))
    target = torch.tensor(
        [data.draw(st.sampled_from(torch.nonzero(torch.isfinite(r)).flatten().tolist())) for r in logits]
    )
    Qa, Ea = Q.clone().requires_grad_(), E.clone().requires_grad_()
    Qb, Eb = Q.double().requires_grad_(), E.double().requires_grad_()
    got = catalog_cross_entropy(Qa, Ea, target, reduction=reduction, **opts)
    want = catalog_cross_entropy_reference(Qb, Eb, target, reduction=reduction, **_double(opts))
    torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-4)
    got.sum().backward()
    want.sum().backward()
    torch.testing.assert_close(Qa.grad.double(), Qb.grad, rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(Ea.grad.double(), Eb.grad, rtol=1e-3, atol=1e-4)


@settings(max_examples=15, deadline=None, derandomize=True)
@given(st.integers(1, 8), st.floats(-1e4, 1e4), st.integers(2, 30))
def test_topk_of_constant_scores_is_any_k_distinct_items(k, value, items):
    """Every score tied: any k distinct items are right, with the shared score."""
    k = min(k, items)
    Q, E = torch.ones(3, 1), torch.zeros(items, 1)
    scores, ids = catalog_topk(Q, E, k, bias=torch.full((items,), value))
    assert all(len(set(r)) == k for r in ids.tolist()) and bool((ids < items).all())
    torch.testing.assert_close(scores, torch.full((3, k), value))
