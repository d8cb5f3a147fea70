"""The myopic oracle: its slate is the exact best one-step slate (checked against every slate of a tiny catalog,
in both simulators, along sessions with fatigue and consumed items), and it acts only on its own environment."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from recengine.env import SimConfig, VecRecSim, synthetic_user_model
from recengine.env.sequential_sim import SeqSimConfig, SequentialVecSim
from recengine.judging.oracle_myopic import MyopicOracle
from tests.env.conftest import make_tiny_sim


def _seq_env():
    cfg = SeqSimConfig(slate_size=3, history_len=8, max_steps=12, fatigue_weight=2.0, fatigue_shown=0.6)
    return SequentialVecSim(make_tiny_sim(num_items=9, config=cfg), 6)


def _mf_env():
    cfg = SimConfig(slate_size=3, history_len=5, fatigue_weight=2.0, fatigue_shown=0.6, repeat_penalty=3.0)
    model = synthetic_user_model(num_users=12, num_items=9, num_genres=3, dim=4, seed=2, config=cfg)
    return VecRecSim(model, 6)


@pytest.mark.parametrize("make", [_seq_env, _mf_env])
def test_the_myopic_slate_has_the_highest_click_probability_of_all_slates(make):
    env = make()
    obs, _ = env.reset(seed=7)
    oracle = MyopicOracle(env)
    slates = np.array(list(itertools.combinations(range(env.num_items), env.slate_size)))  # 84 slates
    for _ in range(5):  # along sessions: fatigue and consumed / clicked items change the best slate
        best = np.max([1.0 - env.choice_probabilities(np.tile(s, (env.num_envs, 1)))[:, -1] for s in slates], axis=0)
        mine = oracle.act(obs).numpy()
        got = 1.0 - env.choice_probabilities(mine)[:, -1]
        np.testing.assert_allclose(got, best, rtol=1e-9, atol=1e-12)
        # and a random slate does no better
        rand = slates[np.random.default_rng(0).integers(0, len(slates), env.num_envs)]
        assert (1.0 - env.choice_probabilities(rand)[:, -1] <= got + 1e-12).all()
        obs, *_ = env.step(mine)


def test_the_oracle_refuses_another_environments_observations():
    env, other = _seq_env(), _seq_env()
    env.reset(seed=1)
    other_obs, _ = other.reset(seed=2)
    oracle = MyopicOracle(env)
    assert not np.array_equal(other_obs["user_id"], env.current_users)  # the two seeds draw other users
    with pytest.raises(ValueError, match="obs"):
        oracle.act(other_obs)
