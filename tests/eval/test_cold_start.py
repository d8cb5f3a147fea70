"""Cold-start evaluation: per-user metrics agree with the averaged offline evaluation; paired summaries pair."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recengine.data.cold_start import cold_start_split
from recengine.data.synthetic import make_synthetic
from recengine.eval.cold_start import paired_summary, per_user_metrics, summarize
from recengine.eval.offline import evaluate_model
from recengine.nn import CatalogHead, SequenceEncoder
from recengine.nn.sequence_recommender import SequenceRecommender


@pytest.fixture(scope="module")
def setup():
    data = make_synthetic(num_users=50, num_items=40, min_len=5, max_len=15, seed=2)
    split = cold_start_split(data, 0.25, seed=0)
    encoder = SequenceEncoder(data.num_items, dim=8, max_len=8, num_layers=1, num_heads=1, dropout=0.0)
    model = SequenceRecommender(encoder, CatalogHead(data.num_items, 8), use_users=False)
    with torch.no_grad():
        model.head.bias.copy_(torch.linspace(-1, 1, data.num_items))
    return split, model


def test_per_user_means_equal_the_offline_evaluation(setup):
    split, model = setup
    values = per_user_metrics(model, split)
    expected = evaluate_model(model, split.test, "test")
    assert values["hr@10"].mean() == pytest.approx(expected["hr@10"])
    assert values["ndcg@10"].mean() == pytest.approx(expected["ndcg@10"])


def test_summary_splits_cold_and_warm_events(setup):
    split, model = setup
    values = per_user_metrics(model, split)
    summary = summarize(values)
    assert summary["cold"]["hr@10"]["n"] == int(split.cold_target[split.eval_users].sum())
    assert summary["cold"]["hr@10"]["n"] + summary["warm"]["hr@10"]["n"] == split.eval_users.size
    assert summary["warm"]["ndcg@10"]["mean"] == pytest.approx(values["ndcg@10"][~values["cold"]].mean())


def test_paired_summary_is_the_mean_per_user_difference():
    users = np.arange(4)
    cold = np.array([True, True, False, False])
    a = {"users": users, "cold": cold, "hr@10": np.array([1.0, 1, 0, 1]), "ndcg@10": np.array([1.0, 0.5, 0, 1])}
    b = {"users": users, "cold": cold, "hr@10": np.array([0.0, 1, 0, 0]), "ndcg@10": np.array([0.0, 0.5, 0, 0])}
    paired = paired_summary(a, b)
    assert paired["cold"]["hr@10"]["mean"] == pytest.approx(0.5)
    assert paired["warm"]["ndcg@10"]["mean"] == pytest.approx(0.5)


def test_paired_summary_refuses_different_users():
    a = {"users": np.arange(2), "cold": np.array([True, False]), "hr@10": np.zeros(2), "ndcg@10": np.zeros(2)}
    b = {**a, "users": np.array([0, 5])}
    with pytest.raises(ValueError, match="same users"):
        paired_summary(a, b)
