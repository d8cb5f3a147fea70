"""The obp-style estimator classes: against the plain reference, obp's calls, unbiasedness over many seeds,
bootstrap intervals, effective sample sizes and the light import."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from recengine.eval.ope import doubly_robust, ips, snips
from recengine.eval.ope_estimators import (
    ESTIMATORS,
    DirectMethod,
    DoublyRobust,
    DoublyRobustWithShrinkage,
    InverseProbabilityWeighting,
    SelfNormalizedDR,
    SelfNormalizedIPW,
    SwitchDR,
)
from recengine.eval.ope_inputs import LoggedRounds, prepare_rounds
from recengine.reference.ope import reference_estimate

R = np.array([1.0, 0.0, 1.0])
PI = np.array([0.5, 1.0, 0.2])
MU = np.array([0.25, 0.5, 0.4])
SESSIONS = np.array([7, 7, 3])  # two sessions: steps (w=2, w=2) and (w=0.5)
Q = np.full(3, 0.5)
V = np.full(3, 0.3)


def _logs(n: int, n_actions: int = 6, len_list: int = 3, seed: int = 0) -> dict:
    """Random obp-style logs: a uniform behavior policy, a random evaluation policy and a noisy reward model."""
    rng = np.random.default_rng(seed)
    action = rng.integers(0, n_actions, n)
    position = rng.integers(0, len_list, n)
    logits = rng.normal(size=(n, n_actions, len_list)) * 1.5
    action_dist = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return dict(
        reward=(rng.random(n) < 0.3).astype(np.float64),
        action=action,
        position=position,
        pscore=np.full(n, 1.0 / n_actions),
        action_dist=action_dist,
        estimated_rewards_by_reg_model=rng.random((n, n_actions, len_list)) * 0.6,
    )


CONFIGS = [
    ("dm", None),
    ("ips", None),
    ("ips", 2.0),
    ("snips", None),
    ("snips", 2.0),
    ("dr", None),
    ("dr", 2.0),
    ("sndr", None),
    ("sndr", 2.0),
    ("switch-dr", 3.0),
    ("switch-dr", 0.0),
    ("switch-dr", None),
    ("dros", 1.0),
    ("dros", 0.0),
    ("dros", None),
]


def _make(name: str, lambda_):
    cls = ESTIMATORS[name]
    if name in ("switch-dr", "dros"):
        return cls() if lambda_ is None else cls(lambda_)
    if name == "dm":
        return cls()
    return cls(clip=lambda_)


@pytest.mark.parametrize("name,lambda_", CONFIGS)
def test_estimator_matches_the_plain_reference(name, lambda_):
    logs = _logs(500)
    ours = _make(name, lambda_).estimate_policy_value(**logs)
    ref = reference_estimate(
        name,
        logs["reward"],
        logs["action"],
        logs["position"],
        logs["pscore"],
        logs["action_dist"],
        logs["estimated_rewards_by_reg_model"],
        lambda_,
    )
    assert ours == pytest.approx(ref, rel=1e-12, abs=1e-15)


def test_obp_calls_run_unchanged():
    logs = _logs(200)
    pi, q = logs["action_dist"], logs["estimated_rewards_by_reg_model"]
    bandit = {k: logs[k] for k in ("reward", "action", "pscore", "position")}
    # each with the keyword arguments obp's estimator of the same name takes
    dm = DirectMethod().estimate_policy_value(
        action_dist=pi, estimated_rewards_by_reg_model=q, position=logs["position"]
    )
    ipw = InverseProbabilityWeighting().estimate_policy_value(**bandit, action_dist=pi)
    dr = DoublyRobust().estimate_interval(
        **bandit,
        action_dist=pi,
        estimated_rewards_by_reg_model=q,
        alpha=0.1,
        n_bootstrap_samples=100,
        random_state=12345,
    )
    args = (logs["reward"], logs["action"], logs["position"], logs["pscore"], pi, q)
    assert dm == pytest.approx(reference_estimate("dm", *args))
    assert ipw == pytest.approx(reference_estimate("ips", *args))
    assert dr.to_dict()["90.0% CI (lower)"] < reference_estimate("dr", *args) < dr.to_dict()["90.0% CI (upper)"]


def test_prepared_rounds_give_the_same_estimates_as_the_arrays():
    logs = _logs(300)
    rounds = prepare_rounds(**logs)
    for cls in ESTIMATORS.values():
        assert cls().estimate_policy_value(rounds=rounds) == cls().estimate_policy_value(**logs), cls.name


def test_per_round_values_match_a_loop_over_rounds():
    logs = _logs(40, n_actions=4, len_list=2, seed=3)
    rounds = prepare_rounds(**logs)
    pi, q = logs["action_dist"], logs["estimated_rewards_by_reg_model"]
    for i in range(40):
        a, p = logs["action"][i], logs["position"][i]
        assert rounds.target_prob[i] == pi[i, a, p]
        assert rounds.q_logged[i] == q[i, a, p]
        assert rounds.v_target[i] == pytest.approx(sum(pi[i, b, p] * q[i, b, p] for b in range(4)))


def test_classes_on_per_decision_arrays_match_the_functions():
    for sessions in (None, SESSIONS):
        kw = dict(reward=R, pscore=MU, target_probs=PI, sessions=sessions)
        expected_ips, expected_snips = ips(R, PI, MU, sessions=sessions), snips(R, PI, MU, sessions=sessions)
        assert InverseProbabilityWeighting().estimate_policy_value(**kw) == pytest.approx(expected_ips)
        assert SelfNormalizedIPW().estimate_policy_value(**kw) == pytest.approx(expected_snips)
        assert DoublyRobust().estimate_policy_value(**kw, q_logged=Q, v_target=V) == pytest.approx(
            doubly_robust(R, PI, MU, Q, V, sessions=sessions)
        )
    assert InverseProbabilityWeighting(clip=1.0).estimate_policy_value(
        reward=R, pscore=MU, target_probs=PI
    ) == pytest.approx(ips(R, PI, MU, clip=1.0))


def test_direct_method_with_sessions_averages_first_steps():
    dm = DirectMethod().estimate_policy_value(
        reward=R, pscore=MU, target_probs=PI, q_logged=Q, v_target=np.array([0.3, 0.9, 0.5]), sessions=SESSIONS
    )
    assert dm == pytest.approx((0.3 + 0.5) / 2)


@pytest.mark.parametrize("cls", [SelfNormalizedDR, SwitchDR, DoublyRobustWithShrinkage])
def test_per_round_estimators_reject_sessions(cls):
    with pytest.raises(ValueError, match="sessions"):
        cls().estimate_policy_value(reward=R, pscore=MU, target_probs=PI, q_logged=Q, v_target=V, sessions=SESSIONS)


@pytest.mark.parametrize("cls", [DirectMethod, DoublyRobust, SelfNormalizedDR, SwitchDR, DoublyRobustWithShrinkage])
def test_model_based_estimators_need_a_reward_model(cls):
    logs = _logs(20)
    del logs["estimated_rewards_by_reg_model"]
    with pytest.raises(ValueError, match="estimated_rewards_by_reg_model"):
        cls().estimate_policy_value(**logs)


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: InverseProbabilityWeighting(clip=0.0), "clip"),
        (lambda: SwitchDR(-1.0), "lambda_"),
        (lambda: DoublyRobustWithShrinkage(float("nan")), "lambda_"),
    ],
)
def test_bad_hyperparameters_are_rejected(make, message):
    with pytest.raises(ValueError, match=message):
        make()


# ------------------------------------------------------------------ unbiasedness on logs with a known value


def _known_value_logs(n: int, rng: np.random.Generator):
    """Context-free logs: reward means per (action, position), a uniform behavior policy, a fixed target."""
    n_actions, len_list = 5, 2
    means = np.linspace(0.05, 0.5, n_actions * len_list).reshape(n_actions, len_list)
    target = np.array([[0.5, 0.1], [0.2, 0.1], [0.1, 0.1], [0.1, 0.3], [0.1, 0.4]])
    position = rng.integers(0, len_list, n)
    action = rng.integers(0, n_actions, n)
    reward = (rng.random(n) < means[action, position]).astype(np.float64)
    truth = float(np.mean([(target[:, p] * means[:, p]).sum() for p in range(len_list)]))
    model = np.broadcast_to(means * 0.5 + 0.1, (n, n_actions, len_list))  # a poor reward model
    return dict(
        reward=reward,
        action=action,
        position=position,
        pscore=np.full(n, 1.0 / n_actions),
        action_dist=np.broadcast_to(target, (n, n_actions, len_list)),
        estimated_rewards_by_reg_model=model,
    ), truth


@pytest.mark.parametrize("cls", [InverseProbabilityWeighting, DoublyRobust])
def test_unbiased_estimators_average_to_the_true_value(cls):
    replications, n = 300, 400
    logs, truth = _known_value_logs(replications * n, np.random.default_rng(11))
    rounds = prepare_rounds(**logs)  # one pass over every replication's rounds, then one estimate per replication
    estimates = np.array(
        [
            cls().estimate_policy_value(
                rounds=LoggedRounds(
                    *(
                        getattr(rounds, f)[k * n : (k + 1) * n]
                        for f in ("reward", "pscore", "target_prob", "q_logged", "v_target")
                    )
                )
            )
            for k in range(replications)
        ]
    )
    stderr = estimates.std(ddof=1) / np.sqrt(len(estimates))
    assert abs(estimates.mean() - truth) < 3 * stderr


def test_direct_method_with_a_poor_model_is_biased():
    logs, truth = _known_value_logs(20000, np.random.default_rng(2))
    assert abs(DirectMethod().estimate_policy_value(**logs) - truth) > 0.02


# ------------------------------------------------------------------ intervals and effective sample size


def test_interval_is_seeded_and_brackets_the_estimate():
    logs = _logs(400)
    a = DoublyRobust().estimate_interval(**logs, n_bootstrap_samples=200, random_state=5)
    b = DoublyRobust().estimate_interval(**logs, n_bootstrap_samples=200, random_state=5)
    assert a == b
    assert a.lower < a.estimate < a.upper
    assert a.estimate == DoublyRobust().estimate_policy_value(**logs)


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_interval_matches_a_loop_of_reference_estimates_on_resamples(name):
    logs = _logs(60, seed=4)
    est = _make(name, None).estimate_interval(**logs, n_bootstrap_samples=50, random_state=9, alpha=0.1)
    rng = np.random.default_rng(9)
    reps = []
    for _ in range(50):
        i = rng.integers(0, 60, size=60)
        reps.append(
            reference_estimate(
                name,
                logs["reward"][i],
                logs["action"][i],
                logs["position"][i],
                logs["pscore"][i],
                logs["action_dist"][i],
                logs["estimated_rewards_by_reg_model"][i],
            )
        )
    lower, upper = np.quantile(reps, [0.05, 0.95])
    assert (est.lower, est.upper) == pytest.approx((lower, upper), rel=1e-10)
    assert est.bootstrap_mean == pytest.approx(np.mean(reps), rel=1e-10)


def test_session_interval_resamples_whole_sessions():
    est = SelfNormalizedIPW().estimate_interval(
        reward=R, pscore=MU, target_probs=PI, sessions=SESSIONS, n_bootstrap_samples=400, random_state=0
    )
    # two sessions: a resample holds session 7 twice (1.0 at step 0, 0 at step 1), session 3 twice (1.0), or both
    assert est.lower == pytest.approx(1.0) and est.upper == pytest.approx(1.0)


def test_interval_dict_has_obp_keys():
    d = InverseProbabilityWeighting().estimate_interval(**_logs(50), n_bootstrap_samples=20).to_dict()
    assert {"mean", "95.0% CI (lower)", "95.0% CI (upper)", "estimate"} <= set(d)


@pytest.mark.parametrize("alpha,n_boot,message", [(0.0, 10, "alpha"), (1.0, 10, "alpha"), (0.05, 1, "n_bootstrap")])
def test_interval_rejects_bad_settings(alpha, n_boot, message):
    with pytest.raises(ValueError, match=message):
        InverseProbabilityWeighting().estimate_interval(**_logs(10), alpha=alpha, n_bootstrap_samples=n_boot)


def test_effective_sample_size_of_the_weights_each_estimator_applies():
    kw = dict(reward=R, pscore=MU, target_probs=PI, q_logged=Q, v_target=V)
    assert InverseProbabilityWeighting().effective_sample_size(**kw) == pytest.approx(4.5**2 / (4 + 4 + 0.25))
    assert InverseProbabilityWeighting(clip=1.0).effective_sample_size(**kw) == pytest.approx(2.5**2 / 2.25)
    assert DirectMethod().effective_sample_size(**kw) == pytest.approx(3.0)


def test_importing_the_estimators_does_not_import_torch():
    code = "import sys, recengine.eval.ope_estimators, recengine.eval.ope_inputs; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
