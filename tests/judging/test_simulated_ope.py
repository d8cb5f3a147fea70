"""OPE in the simulator: unbiasedness on a bandit with a known answer, and the sequential check against the
on-policy value."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from recengine.env import SeqSimConfig, SimConfig, UserModel, VecRecSim, synthetic_user_model
from recengine.eval.ope import doubly_robust, ips, snips
from recengine.judging.simulated_ope import _no_click_streak, collect_logs, evaluate_offline, on_policy_value, ope_check
from recengine.judging.slate_policies import (
    DeterministicSlatePolicy,
    EpsilonGreedySlatePolicy,
    SoftmaxSlatePolicy,
    UniformSlatePolicy,
)
from tests.env.conftest import make_tiny_sim


def test_no_click_streak():
    r = np.array([0, 0, 1, 0, 0, 0, 1, 0], float)
    s = np.array([1, 1, 1, 1, 2, 2, 2, 2])
    np.testing.assert_array_equal(_no_click_streak(r, s), [0, 1, 2, 0, 0, 1, 2, 0])


def _obs(users):
    users = np.asarray(users)
    return {"user_id": users, "history": np.full((len(users), 3), -1), "user_features": np.zeros((len(users), 1))}


# ------------------------------------------------------------------ a bandit with a known answer


@pytest.fixture(scope="module")
def bandit():
    """One-step sessions (max_steps=1) over 4 users and 6 items: the exact value is a finite sum."""
    cfg = SimConfig(slate_size=2, history_len=3, max_steps=1)
    rng = np.random.default_rng(5)
    model = UserModel(
        rng.normal(size=(4, 3)),
        rng.normal(size=(6, 3)),
        rng.normal(size=6) - 1.0,
        np.eye(3)[np.arange(6) % 3],
        config=cfg,
    )
    logging_scores = rng.normal(size=(4, 6))
    logging = SoftmaxSlatePolicy(lambda o: logging_scores[o["user_id"]], 2)
    target_scores = rng.normal(size=(4, 6)) * 2
    target = SoftmaxSlatePolicy(lambda o: target_scores[o["user_id"]], 2, temperature=0.8)
    # exact value: users uniform; sum over every ordered slate of pi(slate) * P(click | user, slate)
    slates = np.array(list(itertools.permutations(range(6), 2)))
    value = 0.0
    for u in range(4):
        vec = VecRecSim(model, len(slates))
        vec.reset(seed=0, user_ids=np.full(len(slates), u))
        click = 1.0 - vec.choice_probabilities(slates)[:, -1]
        value += np.sum(target.prob(_obs(np.full(len(slates), u)), slates) * click) / 4
    logs = collect_logs(model, logging, 30000, seed=3)
    return model, logging, target, value, logs


def test_bandit_logs_are_one_step_sessions(bandit):
    model, logging, target, value, logs = bandit
    assert len(logs) == logs.num_sessions == 30000
    assert (logs.steps == 0).all() and len(np.unique(logs.sessions)) == 30000
    np.testing.assert_allclose(logs.logging_probs, logging.prob(logs.obs, logs.slates))


def test_estimators_are_unbiased_on_the_bandit(bandit):
    model, logging, target, value, logs = bandit
    r, mu = logs.rewards, logs.logging_probs
    pi = target.prob(logs.obs, logs.slates)
    w = pi / mu
    se = np.std(w * r) / np.sqrt(len(r))
    assert ips(r, pi, mu) == pytest.approx(value, abs=4 * se)
    assert snips(r, pi, mu) == pytest.approx(value, abs=4 * se)
    assert ips(r, pi, mu, sessions=logs.sessions) == pytest.approx(ips(r, pi, mu))
    # DR is unbiased with a poor reward model (a constant) and has less spread with a good one (the truth)
    rng = np.random.default_rng(0)
    truth_model = lambda obs, slates: 1.0 - _no_click_prob(model, obs, slates)  # noqa: E731
    q_true = truth_model(logs.obs, logs.slates)
    v_true = np.mean([truth_model(logs.obs, target.act(logs.obs, rng=rng)) for _ in range(8)], axis=0)
    const = np.full(len(r), 0.5)
    for q, v in ((const, const), (q_true, v_true)):
        assert doubly_robust(r, pi, mu, q, v) == pytest.approx(value, abs=4 * se)
    spread_good = np.std(v_true + w * (r - q_true))
    spread_const = np.std(0.5 + w * (r - 0.5))
    assert spread_good < 0.9 * spread_const
    est = evaluate_offline(logs, target, num_users=4, num_items=6, dm_samples=4)
    for name in ("ips", "snips", "dr", "ips_per_step", "dr_per_step"):
        assert est[name] == pytest.approx(value, abs=4 * se), name


def _no_click_prob(model, obs, slates):
    """P(no click) per row for one-step states (start of session, the users' own starting histories)."""
    vec = VecRecSim(model, len(slates))
    vec.reset(seed=0, user_ids=obs["user_id"])
    return vec.choice_probabilities(slates)[:, -1]


# ------------------------------------------------------------------ sessions: OPE vs running the policy


@pytest.fixture(scope="module")
def sim():
    return synthetic_user_model(
        num_users=150,
        num_items=60,
        num_genres=6,
        dim=6,
        seed=2,
        config=SimConfig(slate_size=4, history_len=10, max_steps=30),
    )


def _greedy(model):
    def slates(obs):
        a = model.affinity(obs["user_id"])
        h = obs["history"]
        a[np.arange(len(h))[:, None], np.where(h >= 0, h, 0)] -= 100.0 * (h >= 0)
        return np.argsort(-a, axis=1, kind="stable")[:, : model.config.slate_size]

    return slates


def test_collect_logs_sessions_are_whole_and_ordered(sim):
    logs = collect_logs(sim, UniformSlatePolicy(sim.num_items, 4), 300, seed=0, num_envs=64)
    assert logs.num_sessions == 300 and len(np.unique(logs.sessions)) == 300
    for sid in np.unique(logs.sessions)[:50]:
        steps = logs.steps[logs.sessions == sid]
        np.testing.assert_array_equal(steps, np.arange(len(steps)))
    np.testing.assert_allclose(logs.logging_probs, 1 / (60 * 59 * 58 * 57))
    assert logs.session_returns().sum() == logs.rewards.sum()
    # the logged sessions are as long, on average, as sessions of the same policy run separately
    truth = on_policy_value(sim, UniformSlatePolicy(sim.num_items, 4), 3000, seed=9)
    assert len(logs) / 300 == pytest.approx(truth["mean_length"], rel=0.15)


def test_ope_matches_the_on_policy_value_in_the_simulator(sim):
    # estimates from epsilon-greedy logs within 10% of the target's true return per session
    out = ope_check(sim, _greedy(sim), epsilon=0.1, num_sessions=3000, num_eval_sessions=6000, seed=0, num_envs=256)
    assert out["true_return"] > out["logging_return"]  # exploration costs clicks: the logs are not the target's
    for name in ("ips", "snips", "dr"):
        assert out[f"rel_err_{name}"] < 0.10, (name, out)
    # and it tells a better policy from a worse one: uniform slates are estimated far below the target
    low = evaluate_offline(
        collect_logs(sim, EpsilonGreedySlatePolicy(DeterministicSlatePolicy(_greedy(sim)), 0.5, 60, 4), 3000, seed=1),
        UniformSlatePolicy(60, 4),
        num_users=150,
        num_items=60,
    )
    assert low["snips_per_step"] < 0.6 * out["true_ctr"]


# ------------------------------------------------------------------ the same checks on the sequence-aware simulator


@pytest.fixture(scope="module")
def seq_sim():
    return make_tiny_sim(num_users=40, num_items=30, config=SeqSimConfig(slate_size=3, history_len=8, max_steps=15))


def _seq_greedy(model):
    """The response model's own top-k unconsumed items (the history in the observation excluded)."""

    def slates(obs):
        u = model.response.utilities(model.response.states(obs["history"])).numpy().astype(np.float64)
        h = obs["history"]
        u[np.arange(len(h))[:, None], np.where(h >= 0, h, 0)] -= 100.0 * (h >= 0)
        return np.argsort(-u, axis=1, kind="stable")[:, : model.config.slate_size]

    return slates


def test_collect_logs_runs_the_sequential_simulator(seq_sim):
    logs = collect_logs(seq_sim, UniformSlatePolicy(seq_sim.num_items, 3), 200, seed=0, num_envs=32)
    assert logs.num_sessions == 200 and len(np.unique(logs.sessions)) == 200
    assert logs.obs["history"].shape == (len(logs), 8)
    np.testing.assert_allclose(logs.logging_probs, 1 / (30 * 29 * 28))


def test_ope_matches_the_on_policy_value_in_the_sequential_simulator(seq_sim):
    out = ope_check(
        seq_sim, _seq_greedy(seq_sim), epsilon=0.1, num_sessions=3000, num_eval_sessions=6000, seed=0, num_envs=256
    )
    assert out["true_return"] > out["logging_return"]
    for name in ("ips", "snips", "dr"):
        assert out[f"rel_err_{name}"] < 0.10, (name, out)
