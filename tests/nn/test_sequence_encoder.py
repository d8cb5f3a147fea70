"""SequenceEncoder: causality, PAD_ID handling, side features, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recengine.data import item_feature_bags, make_synthetic, user_feature_tables
from recengine.nn import CatalogHead, SequenceEncoder
from recengine.padding import PAD_ID
from tests.helpers import assert_close

N = 40


def encoder(features: bool = True, max_len: int = 8, seed: int = 0, id_dropout: float = 0.0) -> SequenceEncoder:
    torch.manual_seed(seed)
    kw = {}
    if features:
        d = make_synthetic(12, N, seed=1)
        tables, ids, offsets = item_feature_bags(d)
        utables = user_feature_tables(d)
        kw = dict(
            item_feature_tables=tables,
            item_feature_ids=torch.from_numpy(ids),
            item_feature_offsets=torch.from_numpy(offsets),
            user_feature_tables=utables,
            user_feature_ids=torch.from_numpy(np.stack([d.user_features[n] for n, _ in utables], 1)),
        )
    return SequenceEncoder(
        N, dim=16, max_len=max_len, num_layers=2, num_heads=2, dropout=0.1, id_dropout=id_dropout, **kw
    ).eval()


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
        changed[:, p + 1 :] = torch.randint(0, N, changed[:, p + 1 :].shape, generator=g)
        out = enc(changed, users)
        assert_close(out[:, :p], base[:, :p], atol=1e-5, name=f"states before slot {p}")
        assert (out[:, p] - base[:, p]).abs().max() > 1e-4  # the changed slot itself does change


def test_padding_after_the_items_changes_nothing():
    enc = encoder()
    items = torch.tensor([[3, 7, 1, PAD_ID, PAD_ID, PAD_ID]])
    assert_close(enc(items)[:, :3], enc(items[:, :3]), atol=1e-5)


def test_pad_placement_does_not_matter():
    enc = encoder()
    left = torch.tensor([[3, 7, 1, PAD_ID, PAD_ID], [5, PAD_ID, PAD_ID, PAD_ID, PAD_ID]])
    right = torch.tensor([[PAD_ID, PAD_ID, 3, 7, 1], [PAD_ID, PAD_ID, PAD_ID, PAD_ID, 5]])
    scattered = torch.tensor([[3, PAD_ID, 7, PAD_ID, 1], [PAD_ID, 5, PAD_ID, PAD_ID, PAD_ID]])
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
    empty = torch.full((2, 3), PAD_ID)
    users = torch.tensor([0, 3])
    assert_close(enc.last_state(empty, users), enc.empty_state.expand(2, -1) + enc.user_vectors(users))
    assert_close(enc.last_state(empty), enc.empty_state.expand(2, -1))


def test_user_features_change_states():
    enc = encoder()
    items = torch.tensor([[1, 2, 3], [1, 2, 3]])
    out = enc(items, torch.tensor([0, 5]))
    assert (out[0] - out[1]).abs().max() > 1e-4


BAD_INPUTS = [
    (lambda enc: enc(torch.tensor([[1, N]])), IndexError, "items"),  # an id past the catalog
    (lambda enc: enc(torch.tensor([[-2, 1]])), IndexError, "items"),  # a negative id other than PAD_ID
    (lambda enc: enc(torch.tensor([[1.0, 2.0]])), TypeError, "items"),  # float ids
    (lambda enc: enc(torch.zeros(1, 9, dtype=torch.int64)), ValueError, "max_len"),  # a window past max_len
    (lambda enc: enc(torch.tensor([[1, 2]]), torch.tensor([12])), IndexError, "users"),  # an unknown user
]


@pytest.mark.parametrize("call, error, match", BAD_INPUTS)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call(encoder())


def test_users_without_user_features():
    with pytest.raises(ValueError, match="without user features"):
        encoder(features=False)(torch.tensor([[1]]), torch.tensor([0]))


def test_dim_must_divide_into_heads():
    with pytest.raises(ValueError, match="divisible"):
        SequenceEncoder(N, dim=10, num_heads=3)


def test_gradients_reach_ids_positions_and_feature_tables():
    enc = encoder().train()
    head = CatalogHead(N, 16)
    items = torch.tensor([[1, 2, 3, PAD_ID], [4, 5, PAD_ID, PAD_ID]])
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


# ------------------------------------------------------------------------------------------ item text
def _text_encoder(**kw) -> SequenceEncoder:
    return SequenceEncoder(3, dim=4, max_len=4, num_layers=1, num_heads=1, feature_dim=2, **kw)


TEXT_BAGS = dict(
    item_text_vocab_size=3,
    item_text_ids=torch.tensor([0, 2, 1]),
    item_text_offsets=torch.tensor([0, 2, 2, 3]),
    item_text_weights=torch.tensor([0.6, 0.8, 1.0]),
)


def test_text_bags_add_the_projected_weighted_sum_of_token_vectors():
    enc = _text_encoder(**TEXT_BAGS)
    tokens = enc.text_tables.table("text")
    pooled = torch.stack([0.6 * tokens[0] + 0.8 * tokens[2], torch.zeros(2), tokens[1]])
    expected = enc.item_embedding + pooled @ enc.text_projection.weight.T
    assert_close(enc.item_embeddings(), expected)


def test_text_vectors_add_their_learned_projection():
    vectors = torch.randn(3, 5, generator=torch.Generator().manual_seed(0))
    enc = _text_encoder(item_text_vectors=vectors)
    assert_close(enc.item_embeddings(), enc.item_embedding + vectors @ enc.text_vector_projection.weight.T)
    assert "item_text_vectors" in dict(enc.named_buffers())  # frozen: a buffer, not a parameter


def test_gradients_reach_the_token_table_and_text_projections():
    enc = _text_encoder(**TEXT_BAGS, item_text_vectors=torch.ones(3, 5))
    enc.item_embeddings().square().sum().backward()
    for p in (enc.text_tables.weights, enc.text_projection.weight, enc.text_vector_projection.weight):
        assert p.grad is not None and bool(p.grad.abs().sum() > 0)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({**TEXT_BAGS, "item_text_offsets": torch.tensor([0, 2, 3])}, "item_text_offsets"),
        ({**TEXT_BAGS, "item_text_weights": torch.tensor([1.0])}, "item_text_weights"),
        ({**TEXT_BAGS, "item_text_ids": None}, "item_text_ids"),
        ({**TEXT_BAGS, "item_text_vocab_size": -1}, "item_text_vocab_size"),
        ({"item_text_vectors": torch.ones(2, 5)}, "item_text_vectors"),
    ],
)
def test_bad_item_text_is_rejected(kw, match):
    with pytest.raises(ValueError, match=match):
        _text_encoder(**kw)


# ------------------------------------------------------------------------------------ item-id dropout
def _feature_part(enc: SequenceEncoder) -> torch.Tensor:
    """Each item's vector without its id embedding (what an item never seen in training gets)."""
    with torch.no_grad():
        return enc.eval().item_embeddings() - enc.item_embedding


def test_id_dropout_zeroes_whole_id_rows_in_training_mode_only():
    enc = encoder(id_dropout=0.5)
    full, features = enc.item_embeddings().detach(), _feature_part(enc)
    torch.manual_seed(0)
    table = enc.train().item_embeddings().detach()
    dropped = (table - features).abs().amax(1) < 1e-6
    kept = (table - full).abs().amax(1) < 1e-6
    assert bool((dropped ^ kept).all()), "every row is either the full vector or its feature part alone"
    assert 0 < int(dropped.sum()) < N  # p = 0.5 over 40 items: some of each (seeded)
    torch.manual_seed(1)
    assert not torch.equal(enc.item_embeddings().detach(), table)  # a fresh mask per call
    assert torch.equal(enc.eval().item_embeddings().detach(), full)  # eval mode never drops


def test_dropped_id_rows_get_no_gradient():
    enc = encoder(id_dropout=0.5).train()
    torch.manual_seed(3)
    table = enc.item_embeddings()
    table.sum().backward()
    dropped = (table.detach() - _feature_part(enc)).abs().amax(1) < 1e-6
    grad = enc.item_embedding.grad
    assert bool((grad[dropped] == 0).all()) and bool((grad[~dropped] == 1).all())


def test_no_id_dropout_draws_nothing_and_changes_nothing():
    enc = encoder(id_dropout=0.0)
    full = enc.item_embeddings().detach()
    enc.train()
    torch.manual_seed(11)
    state = torch.get_rng_state()
    assert torch.equal(enc.item_embeddings().detach(), full)
    assert torch.equal(torch.get_rng_state(), state)  # the global stream is not touched


def test_id_dropout_in_training_is_seeded():
    enc = encoder(id_dropout=0.3).train()
    items = torch.tensor([[1, 2, 3]])
    torch.manual_seed(5)
    a = enc(items)
    torch.manual_seed(5)
    assert torch.equal(a, enc(items))


@pytest.mark.parametrize(("value", "error"), [(1.0, ValueError), (-0.1, ValueError), ("0.5", TypeError)])
def test_bad_id_dropout_is_rejected_by_name(value, error):
    with pytest.raises(error, match="id_dropout"):
        SequenceEncoder(N, dim=8, num_heads=2, id_dropout=value)


def test_an_explicit_keep_mask_zeroes_exactly_the_items_it_drops():
    enc = encoder(id_dropout=0.5).train()
    full, features = enc.eval().item_embeddings().detach(), _feature_part(enc)
    kept = torch.arange(N) % 3 != 0
    table = enc.train().item_embeddings(kept).detach()
    assert_close(table[kept], full[kept])
    assert_close(table[~kept], features[~kept])
    enc.eval()
    assert enc.draw_id_mask() is None  # eval mode draws nothing


def test_a_bad_keep_mask_is_rejected_by_name():
    enc = encoder(id_dropout=0.5)
    for bad in (torch.ones(N - 1, dtype=torch.bool), torch.ones(N)):
        with pytest.raises(ValueError, match="kept"):
            enc.item_embeddings(bad)


def test_encoder_from_config_builds_what_the_constructor_builds():
    from dataclasses import asdict
    from types import SimpleNamespace

    from recengine.agents.config import EncoderConfig
    from recengine.nn.sequence_encoder import encoder_from_config
    from recengine.train import SASRecConfig

    def built(make):
        torch.manual_seed(5)
        return make().state_dict()

    sas = SASRecConfig(dim=16, max_len=6, num_layers=1, num_heads=2, feature_dim=8, id_dropout=0.1)
    want = built(lambda: SequenceEncoder(N, 16, 6, num_layers=1, num_heads=2, dropout=0.3, feature_dim=8))
    for cfg in (sas, asdict(sas)):
        got = built(lambda cfg=cfg: encoder_from_config(N, cfg))
        assert all(torch.equal(got[k], v) for k, v in want.items())
    enc = encoder_from_config(N, sas)
    assert enc.id_dropout == 0.1 and enc.dropout.p == 0.3
    agent = encoder_from_config(N, EncoderConfig(dim=16, max_len=6, num_layers=1, num_heads=2))
    assert agent.id_dropout == 0.0 and agent.dropout.p == 0.0  # the sizes EncoderConfig lacks: the defaults
    assert encoder_from_config(N, sas, dropout=0.0).dropout.p == 0.0  # a keyword overrides the config
    with pytest.raises(AttributeError):
        encoder_from_config(N, SimpleNamespace(dim=16))
    with pytest.raises(KeyError):
        encoder_from_config(N, {"dim": 16})


def test_sparse_input_grad_gives_the_lookup_a_sparse_gradient_of_the_same_values():
    x = torch.tensor([[3, 1, 3, PAD_ID], [0, 5, PAD_ID, PAD_ID]])
    grads = []
    for sparse in (False, True):
        enc = encoder(features=False)
        enc.sparse_input_grad = sparse
        enc(x).sum().backward()
        grad = enc.item_embedding.grad
        assert grad.is_sparse == sparse
        grads.append(grad.to_dense() if sparse else grad)
    torch.testing.assert_close(grads[1], grads[0])
    with_features = encoder(features=True)  # the table is computed, not the parameter: the dense path stays
    with_features.sparse_input_grad = True
    with_features(x).sum().backward()
    assert not with_features.item_embedding.grad.is_sparse
