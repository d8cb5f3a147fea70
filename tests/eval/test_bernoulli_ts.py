"""BTS's action distribution by Monte Carlo: the same counts as obp's one-simulation-at-a-time loop, exact where
the answer is known, a distribution per position, reproducible by seed; the uniform policy's is exact."""

from __future__ import annotations

import numpy as np
import pytest

from recengine.eval.bernoulli_ts import bernoulli_ts_action_dist, uniform_action_dist

ALPHA = np.array([3.0, 1.0, 2.0, 5.0, 1.5])
BETA = np.array([40.0, 30.0, 60.0, 50.0, 10.0])


def test_matches_obps_simulation_loop_draw_for_draw():
    n_sim, len_list = 3000, 3
    ours = bernoulli_ts_action_dist(ALPHA, BETA, len_list, n_sim=n_sim, random_state=7)[0]
    rng = np.random.default_rng(7)
    counts = np.zeros((5, len_list))
    for _ in range(n_sim):  # obp's BernoulliTS.select_action with no observed rewards, then the count
        selected = rng.beta(ALPHA, BETA).argsort()[::-1][:len_list]
        for pos in range(len_list):
            counts[selected[pos], pos] += 1
    np.testing.assert_array_equal(ours, counts / n_sim)


def test_two_items_match_the_closed_form():
    # X1 ~ Beta(2, 1), X2 ~ Beta(1, 1): P(X1 > X2) = integral of 2x * x over [0, 1] = 2/3
    n_sim = 200_000
    dist = bernoulli_ts_action_dist([2.0, 1.0], [1.0, 1.0], 1, n_sim=n_sim, random_state=0)[0]
    assert dist[0, 0] == pytest.approx(2 / 3, abs=4 * np.sqrt(2 / 9 / n_sim))


def test_each_position_is_a_distribution_and_an_item_appears_once_per_ranking():
    dist = bernoulli_ts_action_dist(ALPHA, BETA, 3, n_rounds=6, n_sim=5000)
    assert dist.shape == (6, 5, 3) and not dist.flags.writeable
    np.testing.assert_allclose(dist.sum(axis=1), 1.0)
    assert (dist.sum(axis=2) <= 1.0 + 1e-12).all()
    full = bernoulli_ts_action_dist(ALPHA, BETA, 5, n_sim=5000)[0]
    np.testing.assert_allclose(full.sum(axis=1), 1.0)  # a full ranking puts every item somewhere


def test_seeded():
    a = bernoulli_ts_action_dist(ALPHA, BETA, 2, n_sim=1000, random_state=3)
    b = bernoulli_ts_action_dist(ALPHA, BETA, 2, n_sim=1000, random_state=3)
    np.testing.assert_array_equal(a, b)


def test_uniform_policy_is_exact():
    dist = uniform_action_dist(80, 3, n_rounds=4)
    assert dist.shape == (4, 80, 3)
    np.testing.assert_array_equal(dist, 1 / 80)


@pytest.mark.parametrize(
    "alpha,beta,len_list,kwargs,message",
    [
        ([1.0, 2.0], [1.0], 1, {}, "same length"),
        ([1.0, 0.0], [1.0, 1.0], 1, {}, "> 0"),
        ([1.0, np.nan], [1.0, 1.0], 1, {}, "finite"),
        ([1.0, 2.0], [1.0, 1.0], 3, {}, "len_list"),
        ([1.0, 2.0], [1.0, 1.0], 1, {"n_sim": 0}, "n_sim"),
    ],
)
def test_bad_priors_are_rejected(alpha, beta, len_list, kwargs, message):
    with pytest.raises(ValueError, match=message):
        bernoulli_ts_action_dist(alpha, beta, len_list, **kwargs)
