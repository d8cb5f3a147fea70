"""Slate policies know their probabilities: they sum to one over every ordered slate and match sampling."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from recengine.judging.slate_policies import (
    DeterministicSlatePolicy,
    EpsilonGreedySlatePolicy,
    MixtureSlatePolicy,
    SoftmaxSlatePolicy,
    UniformSlatePolicy,
)


def _obs(users):
    users = np.asarray(users)
    return {"user_id": users, "history": np.full((len(users), 3), -1), "user_features": np.zeros((len(users), 1))}


def test_slate_policy_probabilities_sum_to_one_and_match_sampling():
    N, k = 5, 2
    scores = np.random.default_rng(0).normal(size=(2, N)) * 1.5
    soft = SoftmaxSlatePolicy(lambda o: scores[o["user_id"]], k, temperature=0.7)
    det = DeterministicSlatePolicy(lambda o: np.tile([3, 1], (len(o["user_id"]), 1)))
    uni = UniformSlatePolicy(N, k)
    mix = MixtureSlatePolicy([soft, det], [0.6, 0.4])
    eps = EpsilonGreedySlatePolicy(det, 0.25, N, k)
    slates = np.array(list(itertools.permutations(range(N), k)))
    obs = _obs(np.ones(len(slates), np.int64))
    for pol in (soft, det, uni, mix, eps):
        p = pol.prob(obs, slates)
        assert p.sum() == pytest.approx(1.0), type(pol).__name__
    rng = np.random.default_rng(1)
    n = 40000
    for pol in (soft, eps):
        drawn = pol.act(_obs(np.ones(n, np.int64)), rng=rng)
        assert (drawn[:, 0] != drawn[:, 1]).all()
        codes = drawn[:, 0] * N + drawn[:, 1]
        freq = np.bincount(codes, minlength=N * N)[slates[:, 0] * N + slates[:, 1]] / n
        p = pol.prob(obs, slates)
        tol = 4 * np.sqrt(p * (1 - p) / n) + 1e-3
        assert (np.abs(freq - p) <= tol).all(), (type(pol).__name__, freq, p)
    assert det.prob(_obs([0, 0]), np.array([[3, 1], [1, 3]])).tolist() == [1.0, 0.0]


def _fixed_slate(obs):
    return np.tile([3, 1], (len(obs["user_id"]), 1))


@pytest.mark.parametrize(
    "policy",
    [
        UniformSlatePolicy(5, 2),
        SoftmaxSlatePolicy(lambda o: np.zeros((len(o["user_id"]), 5)), 2),
        EpsilonGreedySlatePolicy(DeterministicSlatePolicy(_fixed_slate), 0.5, 5, 2),
    ],
)
def test_stochastic_slate_policy_needs_a_generator(policy):
    with pytest.raises(TypeError, match="rng"):
        policy.act(_obs([0, 1]))


def test_slate_policies_are_policies_of_the_one_interface():
    from recengine.agents.policy_base import Policy

    det = DeterministicSlatePolicy(_fixed_slate)
    assert isinstance(det, Policy) and not det.learns
    assert det.act(_obs([0, 1]), explore=True).tolist() == [[3, 1], [3, 1]]
