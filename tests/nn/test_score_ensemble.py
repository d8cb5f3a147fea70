"""ScoreEnsemble: its score is the sum of its members' (checked against dense logits), its figures against an
independent dense ranking, one member alone is that member, and bad members are refused by name."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recengine.data import histories_of, leave_one_out, make_synthetic
from recengine.eval.offline import evaluate_model
from recengine.nn.catalog_head import CatalogHead
from recengine.nn.score_ensemble import ScoreEnsemble
from recengine.nn.sequence_encoder import SequenceEncoder
from recengine.nn.sequence_recommender import SequenceRecommender
from recengine.padding import PAD_ID


def _model(num_items: int, dim: int, max_len: int, seed: int, temperature: float = 1.0) -> SequenceRecommender:
    torch.manual_seed(seed)
    encoder = SequenceEncoder(num_items, dim, max_len, num_layers=1, num_heads=1, dropout=0.0)
    head = CatalogHead(num_items, dim, temperature=temperature)
    with torch.no_grad():
        head.bias.normal_()  # a real bias, so the summed biases are exercised
    return SequenceRecommender(encoder, head, use_users=False).eval()


@pytest.fixture(scope="module")
def split():
    return leave_one_out(histories_of(make_synthetic(60, 40, min_len=4, max_len=25, seed=3)))


def _dense_logits(model: SequenceRecommender, histories: torch.Tensor) -> torch.Tensor:
    q = model.user_states(histories)
    return (q @ model.encoder.item_embeddings().T + model.head.bias) / model.head.temperature


def test_the_score_is_the_sum_of_the_members_scores_whatever_their_widths_windows_and_temperatures():
    a, b = _model(30, 8, 12, seed=0, temperature=0.5), _model(30, 16, 6, seed=1, temperature=2.0)
    ensemble = ScoreEnsemble([a, b])
    histories = torch.randint(0, 30, (5, 12))
    histories[1, 7:] = PAD_ID
    table, bias = ensemble.scoring_table()
    got = ensemble.user_states(histories) @ table.T + bias
    torch.testing.assert_close(got, _dense_logits(a, histories) + _dense_logits(b, histories), rtol=1e-5, atol=1e-4)
    assert ensemble.window_length == 12 and table.shape == (30, 24)


def _dense_ndcg(models, split, which: str) -> float:
    """NDCG@10 by hand: summed dense logits, the user's earlier items removed, the target's rank."""
    h = split.histories
    total = 0.0
    users = split.eval_users
    for u in users:
        start, end = h.offsets[u], split.prefix_end(which)[u]
        seen = h.items[start:end]
        window = torch.from_numpy(seen[-max(m.window_length for m in models) :].copy()).unsqueeze(0)
        with torch.no_grad():
            logits = sum(_dense_logits(m, window)[0] for m in models)
        logits[torch.from_numpy(seen)] = -math.inf
        target = int(split.target(which)[u])
        rank = int((logits > logits[target]).sum())
        total += 1.0 / math.log2(rank + 2) if rank < 10 else 0.0
    return total / len(users)


@pytest.mark.parametrize("which", ["valid", "test"])
def test_evaluate_model_ranks_the_ensemble_as_a_dense_sum_of_logits_does(split, which):
    n = split.histories.num_items
    members = [_model(n, 8, 10, seed=0), _model(n, 12, 10, seed=1, temperature=0.7)]
    got = evaluate_model(ScoreEnsemble(members), split, which)["ndcg@10"]
    assert got == pytest.approx(_dense_ndcg(members, split, which), abs=1e-6)


def test_one_member_is_that_member_and_a_member_twice_ranks_as_it_does(split):
    model = _model(split.histories.num_items, 8, 10, seed=2)
    alone = evaluate_model(model, split, "test")
    assert evaluate_model(ScoreEnsemble([model]), split, "test") == alone
    twice = evaluate_model(ScoreEnsemble([model, model]), split, "test")
    assert twice == pytest.approx(alone)


def test_members_without_a_bias_give_no_bias():
    a, b = _model(10, 4, 5, seed=0), _model(10, 4, 5, seed=1)
    a.head.bias = b.head.bias = None
    assert ScoreEnsemble([a, b]).scoring_table()[1] is None


def test_bad_members_are_refused_by_name():
    with pytest.raises(ValueError, match="members"):
        ScoreEnsemble([])
    with pytest.raises(ValueError, match="same catalog"):
        ScoreEnsemble([_model(10, 4, 5, seed=0), _model(11, 4, 5, seed=0)])
    with pytest.raises(TypeError, match=r"members\[1\]"):
        ScoreEnsemble([_model(10, 4, 5, seed=0), np.zeros(3)])
