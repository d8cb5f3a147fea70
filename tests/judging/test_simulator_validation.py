"""simulator_validation / validation_markdown / kendall_tau."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from recengine.data import build_histories, leave_one_out
from recengine.judging.simulator_validation import kendall_tau, simulator_validation, validation_markdown
from tests.env.conftest import make_tiny_sim


def plain_tau_b(x, y) -> float:
    conc = disc = tx = ty = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
        if dx == 0 and dy == 0:
            continue
        if dx == 0:
            tx += 1
        elif dy == 0:
            ty += 1
        elif dx == dy:
            conc += 1
        else:
            disc += 1
    return (conc - disc) / np.sqrt((conc + disc + tx) * (conc + disc + ty))


@pytest.mark.parametrize(
    "x, y",
    [
        ([1, 2, 3, 4], [10, 20, 30, 40]),
        ([1, 2, 3, 4], [4, 3, 2, 1]),
        ([1, 2, 2, 5], [3, 1, 4, 4]),
        ([0.1, 0.5, 0.3, 0.2, 0.9], [1, 3, 2, 5, 4]),
    ],
)
def test_kendall_tau_matches_the_plain_count(x, y):
    assert kendall_tau(x, y) == pytest.approx(plain_tau_b(np.array(x, float), np.array(y, float)))


def test_kendall_tau_of_a_constant_is_nan():
    assert np.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))


@pytest.fixture(scope="module")
def setup():
    sim = make_tiny_sim(num_users=10, num_items=14, min_history=3, seed=2)
    rng = np.random.default_rng(0)
    users, items, stamps = [], [], []
    for u in range(10):
        n = int(rng.integers(3, 9))
        users += [u] * n
        items += rng.permutation(14)[:n].tolist()
        stamps += list(range(n))
    split = leave_one_out(build_histories(np.array(users), np.array(items), np.array(stamps), 10, 14))

    def already_consumed(obs):
        return np.stack([sim.train_items[sim.train_offsets[u] : sim.train_offsets[u] + 3] for u in obs["user_id"]])

    def fresh(obs):  # three items not in the observed history, lowest ids first
        out = []
        for h in obs["history"]:
            out.append([j for j in range(14) if j not in set(h.tolist())][:3])
        return torch.tensor(out)

    return sim, split, {"consumed": already_consumed, "fresh": fresh}


def test_validation_reports_returns_orderings_and_consumed_shares(setup):
    sim, split, policies = setup
    v = simulator_validation(
        sim,
        split,
        policies=policies,
        offline_ndcg={"consumed": 0.01, "fresh": 0.2},
        large_model={"hr@10": 0.3, "ndcg@10": 0.2},
        target="fresh",
        baseline="consumed",
        num_sessions=64,
        seed=3,
    )
    rows = v["policies"]
    assert rows["consumed"]["consumed_share"] == 1.0
    assert rows["consumed"]["sim_return"] == 0.0 and rows["consumed"]["ctr"] == 0.0
    assert rows["fresh"]["sim_return"] > 0.0
    assert v["kendall_tau"] == 1.0
    assert v["paired"]["diff"] == pytest.approx(rows["fresh"]["sim_return"])
    assert v["checks"]["fresh - consumed return: interval above 0"] is True
    assert v["user_model"]["test"] == sim.response.evaluate(split, "test")
    assert set(v["checks"]) >= {
        "user model HR@10 >= 0.16",
        "user model log-likelihood above the popularity choice model's",
    }


def test_validation_markdown_has_the_section_and_every_policy(setup):
    sim, split, policies = setup
    v = simulator_validation(
        sim, split, policies=policies, offline_ndcg={"consumed": 0.01, "fresh": 0.2}, num_sessions=16
    )
    text = validation_markdown(v)
    assert text.startswith("## Simulator validation")
    assert "| consumed |" in text and "| fresh |" in text and "Kendall" in text


@pytest.mark.parametrize(
    "offline, policies_kept, match",
    [
        ({"consumed": 0.1}, ("consumed", "fresh"), "offline_ndcg"),
        ({"consumed": 0.1, "fresh": 0.2}, ("fresh",), "at least two"),
    ],
)
def test_validation_rejects_bad_arguments(setup, offline, policies_kept, match):
    sim, split, policies = setup
    with pytest.raises(ValueError, match=match):
        simulator_validation(sim, split, policies={k: policies[k] for k in policies_kept}, offline_ndcg=offline)


def test_random_ranking_ndcg_is_the_expected_gain_of_a_uniform_ranking():
    from recengine.data import histories_of, leave_one_out, make_synthetic
    from recengine.judging.simulator_validation import random_ranking_ndcg

    split = leave_one_out(histories_of(make_synthetic(num_users=30, num_items=80, seed=1)))
    users = split.eval_users
    unseen = 80 - (split.prefix_end("test")[users] - split.histories.offsets[users])
    assert unseen.min() >= 10  # every user has ten unseen items: each top position holds the target w.p. 1/n
    gains = (1.0 / np.log2(np.arange(10) + 2.0)).sum()
    assert random_ranking_ndcg(split) == pytest.approx(np.mean(gains / unseen))
