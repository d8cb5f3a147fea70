"""CatalogHead: its loss and top-k equal the plain-PyTorch reference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from recengine.nn import CatalogHead
from recengine.reference.policy import catalog_cross_entropy_reference, catalog_topk_reference
from tests.helpers import assert_close

N = 40


def head_inputs(seed=0, b=6, d=8):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, d, generator=g), torch.randn(N, d, generator=g), torch.randint(0, N, (b,), generator=g)


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_loss_equals_reference_cross_entropy(temperature):
    Q, E, t = head_inputs()
    head = CatalogHead(N, 8, temperature=temperature)
    with torch.no_grad():
        head.bias.copy_(torch.linspace(-1, 1, N))
    Q1, E1 = Q.clone().requires_grad_(), E.clone().requires_grad_()
    loss = head.loss(Q1, t, E1)
    Q2, E2 = Q.clone().requires_grad_(), E.clone().requires_grad_()
    bias2 = head.bias.detach().clone().requires_grad_()
    want = F.cross_entropy((Q2 @ E2.T + bias2) / temperature, t)
    assert_close(loss, want, rtol=1e-5, atol=1e-5)
    assert_close(
        loss,
        catalog_cross_entropy_reference(Q, E, t, bias=head.bias.detach(), temperature=temperature),
        rtol=1e-5,
        atol=1e-5,
    )
    loss.backward()
    want.backward()
    assert_close(Q1.grad, Q2.grad, atol=1e-5, name="dQ")
    assert_close(E1.grad, E2.grad, atol=1e-5, name="dE")
    assert_close(head.bias.grad, bias2.grad, atol=1e-5, name="dbias")


def test_loss_sum_and_none_reductions():
    Q, E, t = head_inputs(1)
    head = CatalogHead(N, 8)
    per_row = head.loss(Q, t, E, reduction="none")
    assert per_row.shape == (6,)
    assert_close(per_row, F.cross_entropy(Q @ E.T, t, reduction="none"), atol=1e-5)
    assert_close(head.loss(Q, t, E, reduction="sum"), per_row.sum(), atol=1e-4)


def test_topk_matches_reference_with_exclusion():
    Q, E, _ = head_inputs(2)
    head = CatalogHead(N, 8)
    offsets = torch.tensor([0, 3, 3, 5, 6, 10, 12])
    ids = torch.tensor([0, 1, 2, 7, 8, 9, 3, 4, 5, 6, 10, 11])
    scores, top = head.topk(Q, 5, E, exclude_offsets=offsets, exclude_ids=ids)
    ref_scores, ref_top = catalog_topk_reference(
        Q, E, 5, bias=head.bias.detach(), exclude_offsets=offsets, exclude_ids=ids
    )
    assert torch.equal(top, ref_top)
    assert_close(scores, ref_scores, atol=1e-5)
    for r in range(6):
        assert not set(top[r].tolist()) & set(ids[offsets[r] : offsets[r + 1]].tolist())


def test_untied_head_and_full_logits():
    Q, _, t = head_inputs(3)
    head = CatalogHead(N, 8, own_table=True, bias=False)
    assert_close(head(Q), Q @ head.weight.T)
    assert_close(head.loss(Q, t), F.cross_entropy(Q @ head.weight.T, t), atol=1e-5)
    with pytest.raises(ValueError, match="tied"):
        CatalogHead(N, 8).loss(Q, t)
    with pytest.raises(ValueError, match="item_table"):
        CatalogHead(N, 8).loss(Q, t, torch.zeros(N + 1, 8))


def test_unknown_items_score_with_the_mean_bias_of_the_items_not_masked():
    from recengine.nn.catalog_head import MASKED_LOGIT

    Q, E, t = head_inputs(seed=4)
    head = CatalogHead(N, 8)
    masked = torch.arange(N) >= N - 5  # kept out of the softmax (cold items while training)
    with torch.no_grad():
        head.bias.copy_(torch.linspace(-1, 1, N))
        head.bias[masked] = MASKED_LOGIT
    mean = torch.linspace(-1, 1, N)[~masked].mean()
    assert head.unknown_bias().item() == pytest.approx(mean.item())
    unknown = torch.arange(N) % 2 == 0  # some masked items among them: they stay masked
    t = t.clamp(max=N - 6)
    loss = head.loss(Q, t, E, unknown=unknown)
    bias = torch.where(unknown & ~masked, mean, head.bias.detach())
    assert_close(loss, F.cross_entropy(Q @ E.T + bias, t), rtol=1e-5, atol=1e-5)
    loss.backward()
    assert bool((head.bias.grad[unknown & ~masked] == 0).all())  # what an unknown item's own bias learned is not used
    assert bool((head.bias.grad[~unknown & ~masked] != 0).all())


def test_a_bad_unknown_mask_is_rejected_by_name():
    Q, E, t = head_inputs()
    with pytest.raises(ValueError, match="unknown"):
        CatalogHead(N, 8).loss(Q, t, E, unknown=torch.zeros(N - 1, dtype=torch.bool))


@pytest.mark.parametrize("temperature", [1.0, 0.5])
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_label_smoothing_equals_torch_cross_entropy_over_the_items_not_masked(temperature, with_bias, reduction):
    from recengine.nn.catalog_head import MASKED_LOGIT

    Q, E, t = head_inputs(2)
    head = CatalogHead(N, 8, temperature=temperature, bias=with_bias)
    live = torch.ones(N, dtype=torch.bool)
    if with_bias:  # items 0 and 7 masked out (as PAD and a never-seen item are), the targets avoid them
        live[[0, 7]] = False
        with torch.no_grad():
            head.bias.copy_(torch.where(live, torch.linspace(-1, 1, N), torch.tensor(MASKED_LOGIT)))
        t = torch.where(live[t], t, torch.full_like(t, 3))
    Q1, E1 = Q.clone().requires_grad_(), E.clone().requires_grad_()
    loss = head.loss(Q1, t, E1, label_smoothing=0.2, reduction=reduction)
    Q2, E2 = Q.clone().requires_grad_(), E.clone().requires_grad_()
    logits = Q2 @ E2.T
    if with_bias:
        bias2 = head.bias.detach().clone().requires_grad_()
        logits = logits + bias2
    # the independent form: torch's own smoothed cross-entropy over the live items' columns only
    remap = torch.cumsum(live.long(), 0) - 1
    want = F.cross_entropy(logits[:, live] / temperature, remap[t], label_smoothing=0.2, reduction=reduction)
    assert_close(loss, want, rtol=1e-5, atol=1e-5)
    loss.sum().backward()
    want.sum().backward()
    assert_close(Q1.grad, Q2.grad, atol=1e-5, name="dQ")
    assert_close(E1.grad, E2.grad, atol=1e-5, name="dE")
    if with_bias:
        assert_close(head.bias.grad[live], bias2.grad[live], atol=1e-5, name="dbias")


def test_label_smoothing_zero_is_the_plain_loss_and_bad_values_are_named():
    Q, E, t = head_inputs(3)
    head = CatalogHead(N, 8)
    assert torch.equal(head.loss(Q, t, E, label_smoothing=0.0), head.loss(Q, t, E))
    for bad in (-0.1, 1.0, float("nan")):
        with pytest.raises(ValueError, match="label_smoothing"):
            head.loss(Q, t, E, label_smoothing=bad)
    offsets, ids = torch.tensor([0, 1, 1, 1, 1, 1, 1]), torch.tensor([5])
    with pytest.raises(ValueError, match="label_smoothing"):
        head.loss(Q, t, E, label_smoothing=0.1, exclude_offsets=offsets, exclude_ids=ids)
    with pytest.raises(ValueError, match="reduction"):
        head.loss(Q, t, E, reduction="avg")
