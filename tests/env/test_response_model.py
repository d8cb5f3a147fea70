"""The response model: its scores, its held-out metrics and log-likelihood, the train-only split it is fitted on."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recengine.data import build_histories, leave_one_out
from recengine.env.response_model import ResponseModel, popularity_log_likelihood, train_histories, train_only_split
from recengine.eval.metrics import evaluate_ranking


def small_split(seed: int = 0, num_users: int = 12, num_items: int = 15):
    rng = np.random.default_rng(seed)
    users, items, stamps = [], [], []
    for u in range(num_users):
        n = int(rng.integers(2, 9))
        users += [u] * n
        items += rng.permutation(num_items)[:n].tolist()
        stamps += sorted(rng.integers(0, 10**6, n).tolist())
    return leave_one_out(build_histories(np.array(users), np.array(items), np.array(stamps), num_users, num_items))


def test_train_only_split_never_holds_valid_or_test_items():
    split = small_split()
    fit = train_only_split(split)
    h = split.histories
    for u in range(h.num_users):
        train = h.items[h.offsets[u] : split.train_end[u]].tolist()
        assert fit.histories.of(u).tolist() == train
        if len(train) >= 3:  # the last train item is the early-stopping target, the rest is trained on
            assert fit.valid_target[u] == train[-1] == fit.test_target[u]
            assert fit.train_end[u] == fit.histories.offsets[u] + len(train) - 1
        else:
            assert fit.valid_target[u] == -1 and fit.train_end[u] == fit.histories.offsets[u + 1]


def test_train_histories_keep_the_timestamps():
    split = small_split(1)
    th = train_histories(split)
    h = split.histories
    for u in range(h.num_users):
        np.testing.assert_array_equal(
            th.timestamps[th.offsets[u] : th.offsets[u + 1]], h.timestamps[h.offsets[u] : split.train_end[u]]
        )


def test_popularity_log_likelihood_matches_the_plain_formula():
    split = small_split(2)
    h = split.histories
    counts = np.ones(h.num_items)
    for u in range(h.num_users):
        for it in h.items[h.offsets[u] : split.train_end[u]]:
            counts[it] += 1
    values = []
    for u in split.eval_users:
        seen = set(h.items[h.offsets[u] : split.prefix_end("test")[u]].tolist())
        mass = sum(counts[j] for j in range(h.num_items) if j not in seen)
        values.append(np.log(counts[split.test_target[u]] / mass))
    assert popularity_log_likelihood(split, "test") == pytest.approx(np.mean(values))


def test_score_histories_excludes_the_history_and_is_a_distribution(tiny_sim):
    r = tiny_sim.response
    hist = np.array([[-1, 3, 5], [2, -1, -1], [-1, -1, -1]])
    logp = r.score_histories(hist)
    assert logp.shape == (3, r.num_items)
    assert torch.isneginf(logp[0, [3, 5]]).all() and torch.isneginf(logp[1, 2])
    np.testing.assert_allclose(torch.logsumexp(logp, 1).numpy(), 0.0, atol=1e-9)
    assert torch.isfinite(r.score_histories(hist, exclude_seen=False)).all()


def test_evaluate_uses_the_project_metric_and_the_choice_log_likelihood(tiny_sim):
    r = tiny_sim.response
    split = small_split(3, num_items=r.num_items)
    got = r.evaluate(split, "test")
    h = split.histories
    users = split.eval_users
    rows, lls = [], []
    for u in users:
        prefix = h.items[h.offsets[u] : split.prefix_end("test")[u]].tolist()
        rows.append(prefix)
        logp = r.score_histories(np.array([prefix]))[0]
        lls.append(float(logp[split.test_target[u]]))
    Q = torch.cat([r.states(np.array([p], dtype=np.int64)) for p in rows])
    seen_offsets = np.concatenate([[0], np.cumsum([len(p) for p in rows])])
    expected = evaluate_ranking(
        Q,
        r.item_table(),
        torch.from_numpy(split.test_target[users]),
        bias=r.effective_bias(),
        exclude_offsets=torch.from_numpy(seen_offsets),
        exclude_ids=torch.tensor(sum(rows, []), dtype=torch.int64),
    )
    for key in ("hr@10", "ndcg@10", "mrr@10"):
        assert got[key] == pytest.approx(expected[key])
    assert got["log_likelihood"] == pytest.approx(np.mean(lls), rel=1e-6)


@pytest.mark.parametrize("kwargs, match", [({"beta": 0.0}, "beta"), ({"popularity_weight": -1.0}, "popularity_weight")])
def test_bad_parameters_raise(tiny_sim, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ResponseModel(tiny_sim.response.encoder, tiny_sim.response.item_bias, **kwargs)


def test_states_reject_out_of_range_ids(tiny_sim):
    with pytest.raises(IndexError, match="histories"):
        tiny_sim.response.states(np.array([[0, tiny_sim.num_items]]))
