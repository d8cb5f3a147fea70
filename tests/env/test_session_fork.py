"""Forks of simulated sessions: the click odds they expose, their independence from the environment they came
from, and how they end."""

from __future__ import annotations

import numpy as np
import pytest

from recengine.env import SimConfig, VecRecSim, synthetic_user_model
from recengine.env.sequential_sim import SeqSimConfig, SequentialVecSim
from recengine.env.session_fork import PLANNING_EPISODE
from tests.env.conftest import make_tiny_sim


def _seq_env(n: int = 6):
    return SequentialVecSim(make_tiny_sim(num_items=20), n)


def _mf_env(n: int = 6):
    model = synthetic_user_model(
        num_users=20, num_items=15, num_genres=3, dim=4, seed=1, config=SimConfig(slate_size=3, history_len=5)
    )
    return VecRecSim(model, n)


ENVS = [_seq_env, _mf_env]


def _random_slates(rng, n: int, num_items: int, k: int) -> np.ndarray:
    return np.argsort(rng.random((n, num_items)), 1)[:, :k]


@pytest.mark.parametrize("make", ENVS)
def test_choice_weights_give_the_choice_probabilities(make):
    env = make()
    env.reset(seed=5)
    rng = np.random.default_rng(0)
    for _ in range(4):  # along sessions: fatigue, clicks and consumed items change the odds
        slates = _random_slates(rng, env.num_envs, env.num_items, env.slate_size)
        w = np.take_along_axis(env.choice_weights(), slates, 1)
        expected = np.concatenate([w, np.ones((env.num_envs, 1))], 1) / (1.0 + w.sum(1, keepdims=True))
        np.testing.assert_allclose(env.choice_probabilities(slates), expected, rtol=1e-5, atol=1e-12)
        env.step(slates)


@pytest.mark.parametrize("make", ENVS)
def test_stepping_a_fork_leaves_the_environment_as_it_was(make):
    """The same slates give the same sessions whether or not forks are made and stepped in between."""
    rng = np.random.default_rng(1)
    plain, forked = make(), make()
    plain.reset(seed=11)
    forked.reset(seed=11)
    for _ in range(6):
        slates = _random_slates(rng, plain.num_envs, plain.num_items, plain.slate_size)
        fork = forked.fork(np.arange(forked.num_envs), copies=3)
        for _ in range(3):
            fork.step(_random_slates(rng, fork.live.size, plain.num_items, plain.slate_size))
        np.testing.assert_array_equal(forked.choice_weights(), plain.choice_weights())
        a, b = plain.step(slates), forked.step(slates)
        for x, y in zip(a[:4], b[:4]):
            np.testing.assert_array_equal(
                x if not isinstance(x, dict) else x["history"], y if not isinstance(y, dict) else y["history"]
            )
        np.testing.assert_array_equal(a[4]["click_position"], b[4]["click_position"])


@pytest.mark.parametrize("make", ENVS)
def test_a_fork_starts_from_the_sessions_state_with_its_own_draws(make):
    env = make()
    env.reset(seed=3)
    env.step(_random_slates(np.random.default_rng(2), env.num_envs, env.num_items, env.slate_size))
    rows = np.array([4, 1])
    fork = env.fork(rows, copies=2)
    assert fork.num_sessions == 4 and fork.live.tolist() == [0, 1, 2, 3]
    np.testing.assert_array_equal(fork.choice_weights(), env.choice_weights()[[4, 4, 1, 1]])
    assert (fork._slots.episode >= PLANNING_EPISODE).all()  # never a real session's (episode, step) draws


def test_copies_with_other_seeds_see_other_futures_and_ended_copies_stay_ended():
    cfg = SeqSimConfig(slate_size=3, history_len=8, max_steps=5)
    env = SequentialVecSim(make_tiny_sim(num_items=20, config=cfg), 1)
    env.reset(seed=0)
    n = 400
    fork = env.fork(np.array([0]), copies=n, stream_seeds=np.arange(n, dtype=np.uint64))
    slate = np.argsort(-env.choice_weights()[0])[:3]
    clicks = fork.step(np.tile(slate, (n, 1)))
    assert 0 < clicks.mean() < 1  # the copies' own draws differ
    for _ in range(cfg.max_steps):
        live = fork.live
        if live.size == 0:
            break
        before = fork.returns.copy()
        rewards = fork.step(_tile_best(fork))
        assert (rewards[fork.done & ~np.isin(np.arange(n), live)] == 0).all()
        np.testing.assert_array_equal(fork.returns, before + rewards)
    assert fork.done.all() and fork.live.size == 0  # truncated at max_steps at the latest
    assert (fork.step(np.zeros((0, 3), np.int64)) == 0).all()


def _tile_best(fork) -> np.ndarray:
    return np.argsort(-fork.choice_weights(), 1)[:, : fork.slate_size]


def test_a_bad_fork_request_is_refused():
    env = _seq_env()
    with pytest.raises(RuntimeError, match="reset"):
        env.fork(np.array([0]))
    env.reset(seed=0)
    with pytest.raises(IndexError, match="rows"):
        env.fork(np.array([env.num_envs]))
    with pytest.raises(ValueError, match="stream_seeds"):
        env.fork(np.array([0, 1]), copies=2, stream_seeds=np.arange(3, dtype=np.uint64))
    fork = env.fork(np.array([0]))
    with pytest.raises(ValueError, match="slates"):
        fork.step(np.zeros((2, env.slate_size), np.int64))


def test_after_its_last_step_a_fork_is_closed():
    env = _seq_env()
    env.reset(seed=1)
    fork = env.fork(np.arange(env.num_envs), copies=2)
    rewards = fork.step(_tile_best(fork), last=True)
    assert rewards.shape == (2 * env.num_envs,)
    with pytest.raises(RuntimeError, match="last step"):
        fork.choice_weights()
    with pytest.raises(RuntimeError, match="last step"):
        fork.step(np.zeros((fork.live.size, env.slate_size), np.int64))


def test_copies_that_click_alike_share_one_state_computation_and_match_a_single_copy():
    env = _seq_env(4)
    env.reset(seed=6)
    seeds = np.arange(4, dtype=np.uint64) + 50
    one = env.fork(np.arange(4), copies=1, stream_seeds=seeds)
    three = env.fork(np.arange(4), copies=3, stream_seeds=np.repeat(seeds, 3))
    for _ in range(3):
        if one.live.size == 0:
            break
        slates = _tile_best(one)
        np.testing.assert_allclose(three.choice_weights(), np.repeat(one.choice_weights(), 3, axis=0), rtol=1e-5)
        one.step(slates)
        three.step(np.repeat(slates, 3, axis=0))
        np.testing.assert_array_equal(three.returns, np.repeat(one.returns, 3))
