"""SequenceEncoder (causality, PAD handling, features, errors) and CatalogHead (loss and top-k = reference)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from recengine.data import item_feature_bags, make_synthetic, user_feature_tables
from recengine.nn import PAD, CatalogHead, SequenceEncoder
from recengine.reference.policy import catalog_cross_entropy_reference, catalog_topk_reference
from tests.helpers import assert_close

N = 40


def encoder(features: bool = True, max_len: int = 8, seed: int = 0) -> SequenceEncoder:
    torch.manual_seed(seed)
    kw = {}
    if features:
        d = make_synthetic(12, N, seed=1)
        tables, ids, offsets = item_feature_bags(d)
        utables = user_feature_tables(d)
        kw = dict(item_feature_tables=tables, item_feature_ids=torch.from_numpy(ids),
                  item_feature_offsets=torch.from_numpy(offsets), user_feature_tables=utables,
                  user_feature_ids=torch.from_numpy(np.stack([d.user_features[n] for n, _ in utables], 1)))
    return SequenceEncoder(N, dim=16, max_len=max_len, num_layers=2, num_heads=2, dropout=0.1, **kw).eval()


@pytest.mark.parametrize("features", [False, True])
def test_future_items_never_change_earlier_states(features):
    enc = encoder(features)
    g = torch.Generator().manual_seed(0)
    items = torch.randint(0, N, (5, 8), generator=g)
    users = torch.arange(5) if features else None
    base = enc(items, users)
    for p in range(8):
        changed = items.clone()
        changed[:, p] = (changed[:, p] + 1 + torch.randint(0, N - 1, (5,), generator=g)) % N
        changed[:, p + 1:] = torch.randint(0, N, changed[:, p + 1:].shape, generator=g)
        out = enc(changed, users)
        assert_close(out[:, :p], base[:, :p], atol=1e-5, name=f"states before slot {p}")
        assert (out[:, p] - base[:, p]).abs().max() > 1e-4  # the changed slot itself does change


def test_padding_after_the_items_changes_nothing():
    enc = encoder()
    items = torch.tensor([[3, 7, 1, PAD, PAD, PAD]])
    assert_close(enc(items)[:, :3], enc(items[:, :3]), atol=1e-5)


def test_pad_placement_does_not_matter():
    enc = encoder()
    left = torch.tensor([[3, 7, 1, PAD, PAD], [5, PAD, PAD, PAD, PAD]])
    right = torch.tensor([[PAD, PAD, 3, 7, 1], [PAD, PAD, PAD, PAD, 5]])
    scattered = torch.tensor([[3, PAD, 7, PAD, 1], [PAD, 5, PAD, PAD, PAD]])
    a, b, c = enc(left), enc(right), enc(scattered)
    assert_close(b[0, 2:], a[0, :3], atol=1e-5)
    assert_close(c[0, [0, 2, 4]], a[0, :3], atol=1e-5)
    assert_close(b[1, 4], a[1, 0], atol=1e-5)
    for x in (left, right, scattered):
        assert_close(enc.last_state(x), a[torch.arange(2), torch.tensor([2, 0])], atol=1e-5)


def test_last_state_long_history_and_empty_rows():
    enc = encoder(max_len=4)
    long = torch.tensor([[1, 2, 3, 4, 5, 6, 7]])
    assert_close(enc.last_state(long), enc(long[:, -4:])[:, -1], atol=1e-5)  # the most recent max_len items
    empty = torch.full((2, 3), PAD)
    users = torch.tensor([0, 3])
    assert_close(enc.last_state(empty, users), enc.empty_state.expand(2, -1) + enc.user_vectors(users))
    assert_close(enc.last_state(empty), enc.empty_state.expand(2, -1))


def test_user_features_change_states():
    enc = encoder()
    items = torch.tensor([[1, 2, 3], [1, 2, 3]])
    out = enc(items, torch.tensor([0, 5]))
    assert (out[0] - out[1]).abs().max() > 1e-4


def test_bad_input():
    enc = encoder()
    with pytest.raises(IndexError, match="items"):
        enc(torch.tensor([[1, N]]))
    with pytest.raises(IndexError, match="items"):
        enc(torch.tensor([[-2, 1]]))
    with pytest.raises(TypeError, match="items"):
        enc(torch.tensor([[1.0, 2.0]]))
    with pytest.raises(ValueError, match="max_len"):
        enc(torch.zeros(1, 9, dtype=torch.int64))
    with pytest.raises(IndexError, match="users"):
        enc(torch.tensor([[1, 2]]), torch.tensor([12]))
    with pytest.raises(ValueError, match="without user features"):
        encoder(features=False)(torch.tensor([[1]]), torch.tensor([0]))
    with pytest.raises(ValueError, match="divisible"):
        SequenceEncoder(N, dim=10, num_heads=3)


def test_gradients_reach_ids_positions_and_feature_tables():
    enc = encoder().train()
    head = CatalogHead(N, 16)
    items = torch.tensor([[1, 2, 3, PAD], [4, 5, PAD, PAD]])
    states = enc(items, torch.tensor([0, 1]))
    loss = head.loss(states[items >= 0], torch.tensor([2, 3, 9, 5, 6]), enc.item_embeddings())
    loss.backward()
    for name, p in enc.named_parameters():
        if name in ("empty_state",):
            continue
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert head.bias.grad.abs().sum() > 0


def test_dropout_is_seeded():
    enc = encoder().train()
    items = torch.tensor([[1, 2, 3]])
    torch.manual_seed(5)
    a = enc(items)
    torch.manual_seed(5)
    b = enc(items)
    assert torch.equal(a, b)


# ------------------------------------------------------------------------------------------ head
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
    assert_close(loss, catalog_cross_entropy_reference(Q, E, t, bias=head.bias.detach(), temperature=temperature),
                 rtol=1e-5, atol=1e-5)
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
    ref_scores, ref_top = catalog_topk_reference(Q, E, 5, bias=head.bias.detach(), exclude_offsets=offsets,
                                                 exclude_ids=ids)
    assert torch.equal(top, ref_top)
    assert_close(scores, ref_scores, atol=1e-5)
    for r in range(6):
        assert not set(top[r].tolist()) & set(ids[offsets[r]:offsets[r + 1]].tolist())


def test_untied_head_and_full_logits():
    Q, _, t = head_inputs(3)
    head = CatalogHead(N, 8, own_table=True, bias=False)
    assert_close(head(Q), Q @ head.weight.T)
    assert_close(head.loss(Q, t), F.cross_entropy(Q @ head.weight.T, t), atol=1e-5)
    with pytest.raises(ValueError, match="tied"):
        CatalogHead(N, 8).loss(Q, t)
    with pytest.raises(ValueError, match="item_table"):
        CatalogHead(N, 8).loss(Q, t, torch.zeros(N + 1, 8))
