"""Cold-start evaluation: per-user metrics against a written-out ranking of every event; paired summaries pair."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recengine.data.cold_start import cold_start_split
from recengine.data.synthetic import make_synthetic
from recengine.eval.cold_start import paired_summary, per_user_metrics, summarize
from recengine.nn import CatalogHead, SequenceEncoder
from recengine.nn.sequence_recommender import SequenceRecommender


@pytest.fixture(scope="module")
def setup():
    data = make_synthetic(num_users=50, num_items=40, min_len=5, max_len=15, seed=2)
    split = cold_start_split(data, 0.25, seed=0)
    torch.manual_seed(0)
    encoder = SequenceEncoder(data.num_items, dim=8, max_len=8, num_layers=1, num_heads=1, dropout=0.0)
    model = SequenceRecommender(encoder, CatalogHead(data.num_items, 8), use_users=False)
    with torch.no_grad():
        model.head.bias.copy_(torch.linspace(-1, 1, data.num_items))
    return split, model


def _reference(model, split, user: int, end: int) -> tuple[float, float]:
    """HR@10 and NDCG@10 of the event items[end] of `user`, from the full logits of its prefix."""
    h = split.test.histories
    prefix = h.items[h.offsets[user] : end]
    window = torch.full((1, model.encoder.max_len), -1, dtype=torch.int64)
    last = torch.from_numpy(prefix[-model.encoder.max_len :])
    window[0, : last.numel()] = last
    with torch.no_grad():
        model.eval()
        logits = model.head(model.user_states(window), model.encoder.item_embeddings())[0]
    logits[torch.from_numpy(prefix)] = -torch.inf
    rank = int((logits > logits[h.items[end]]).sum())
    return float(rank < 10), (1.0 / np.log2(rank + 2.0) if rank < 10 else 0.0)


def test_warm_values_are_the_test_events_whose_item_is_warm(setup):
    split, model = setup
    warm = per_user_metrics(model, split)["warm"]
    expected_users = split.eval_users[~split.cold_target[split.eval_users]]
    np.testing.assert_array_equal(warm["users"], expected_users)
    ends = split.test.prefix_end("test")[expected_users]
    reference = np.array([_reference(model, split, u, e) for u, e in zip(expected_users, ends)])
    np.testing.assert_allclose(warm["hr@10"], reference[:, 0])
    np.testing.assert_allclose(warm["ndcg@10"], reference[:, 1], rtol=1e-12)
    assert (warm["events"] == 1).all()


def test_cold_values_average_every_cold_event_of_a_user(setup):
    split, model = setup
    cold = per_user_metrics(model, split)["cold"]
    h = split.test.histories
    per_user: dict[int, list] = {}
    for u in range(h.num_users):
        for end in range(h.offsets[u] + 1, h.offsets[u + 1]):  # an event with at least one event before it
            if h.items[end] in split.cold_items:
                per_user.setdefault(u, []).append(_reference(model, split, u, end))
    users = np.array(sorted(per_user))
    np.testing.assert_array_equal(cold["users"], users)
    np.testing.assert_array_equal(cold["events"], [len(per_user[u]) for u in users])
    np.testing.assert_allclose(cold["hr@10"], [np.mean([x[0] for x in per_user[u]]) for u in users])
    np.testing.assert_allclose(cold["ndcg@10"], [np.mean([x[1] for x in per_user[u]]) for u in users], rtol=1e-12)
    assert cold["events"].sum() > users.size  # some user has several cold events, so the averaging is tested


def test_summary_counts_users_and_means_their_values(setup):
    split, model = setup
    values = per_user_metrics(model, split)
    summary = summarize(values)
    assert summary["cold"]["hr@10"]["n"] == values["cold"]["users"].size
    assert summary["warm"]["ndcg@10"]["n"] == int((~split.cold_target[split.eval_users]).sum())
    assert summary["warm"]["ndcg@10"]["mean"] == pytest.approx(values["warm"]["ndcg@10"].mean())


def _values(users, hr, ndcg):
    return {"users": np.asarray(users), "events": np.ones(len(users)), "hr@10": np.array(hr), "ndcg@10": np.array(ndcg)}


def test_paired_summary_is_the_mean_per_user_difference():
    a = {"cold": _values([0, 1], [1.0, 1], [1.0, 0.5]), "warm": _values([2, 3], [0.0, 1], [0.0, 1])}
    b = {"cold": _values([0, 1], [0.0, 1], [0.0, 0.5]), "warm": _values([2, 3], [0.0, 0], [0.0, 0])}
    paired = paired_summary(a, b)
    assert paired["cold"]["hr@10"]["mean"] == pytest.approx(0.5)
    assert paired["warm"]["ndcg@10"]["mean"] == pytest.approx(0.5)


def test_paired_summary_refuses_different_users():
    a = {"cold": _values([0, 1], [0.0, 0], [0.0, 0]), "warm": _values([2], [0.0], [0.0])}
    b = {**a, "cold": _values([0, 5], [0.0, 0], [0.0, 0])}
    with pytest.raises(ValueError, match="same cold users"):
        paired_summary(a, b)
