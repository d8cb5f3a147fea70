"""Logged feedback is checked once: a bad field raises a ValueError that names it."""

from __future__ import annotations

import numpy as np
import pytest

from recengine.eval.ope_inputs import prepare_rounds


def _logs(n: int = 8, n_actions: int = 4, len_list: int = 2) -> dict:
    rng = np.random.default_rng(0)
    return dict(
        reward=rng.integers(0, 2, n).astype(np.float64),
        action=rng.integers(0, n_actions, n),
        position=rng.integers(0, len_list, n),
        pscore=np.full(n, 1.0 / n_actions),
        action_dist=np.full((n, n_actions, len_list), 1.0 / n_actions),
        estimated_rewards_by_reg_model=np.full((n, n_actions, len_list), 0.1),
    )


def _with(field: str, value) -> dict:
    logs = _logs()
    logs[field] = value(logs[field]) if callable(value) else value
    return logs


def _set(index, value):
    def change(a):
        a = np.array(a, dtype=np.float64 if not np.issubdtype(np.asarray(a).dtype, np.integer) else a.dtype)
        a[index] = value
        return a

    return change


BAD = [
    ("pscore", _set(2, 0.0), "pscore must be in \\(0, 1\\]"),
    ("pscore", _set(0, 1.5), "pscore must be in \\(0, 1\\]"),
    ("pscore", lambda a: a[:5], "pscore has 5 entries"),
    ("reward", _set(3, np.nan), "reward holds NaN"),
    ("action", _set(1, 4), "action must be in \\[0, 4\\)"),
    ("action", _set(1, -1), "action must be in"),
    ("action", lambda a: a.astype(np.float64), "action must hold integers"),
    ("action", lambda a: a[:7], "action has 7 entries"),
    ("position", _set(0, 2), "position must be in \\[0, 2\\)"),
    ("action_dist", lambda a: a[:6], "action_dist has 6 rounds"),
    ("action_dist", lambda a: a[:, :, 0], "action_dist must be 3-D"),
    ("action_dist", lambda a: a * 0.5, "action_dist must sum to 1"),
    ("action_dist", _set((4, 1, 1), np.nan), "action_dist holds NaN"),
    ("estimated_rewards_by_reg_model", lambda a: a[:, :3], "estimated_rewards_by_reg_model has shape"),
    ("estimated_rewards_by_reg_model", _set((2, 0, 0), np.inf), "estimated_rewards_by_reg_model holds NaN or inf"),
]


@pytest.mark.parametrize("field,change,message", BAD, ids=[f"{f}-{m[:20]}" for f, _, m in BAD])
def test_bad_logs_name_the_field(field, change, message):
    with pytest.raises(ValueError, match=message):
        prepare_rounds(**_with(field, change))


def test_negative_probability_in_action_dist_is_rejected():
    logs = _logs()
    logs["action_dist"] = logs["action_dist"].copy()
    logs["action_dist"][3, 0, 1] = -0.25
    logs["action_dist"][3, 1, 1] = 0.75
    with pytest.raises(ValueError, match="action_dist holds a negative probability \\(round 3\\)"):
        prepare_rounds(**logs)


@pytest.mark.parametrize(
    "extra,message",
    [
        (dict(target_probs=np.full(8, 0.5)), "not both"),
        (dict(q_logged=np.zeros(8)), "not both"),
    ],
)
def test_both_forms_at_once_are_rejected(extra, message):
    with pytest.raises(ValueError, match=message):
        prepare_rounds(**_logs(), **extra)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(reward=[1.0, 0.0], pscore=[0.5, 0.5]), "target_probs"),
        (dict(reward=[1.0, 0.0], pscore=[0.5, 0.5], target_probs=[0.5, 1.5]), "target_probs must be probabilities"),
        (dict(reward=[1.0, 0.0], pscore=[0.5, 0.5], target_probs=[0.5, 0.5], q_logged=[0.0, 0.0]), "together"),
        (dict(reward=[], pscore=[]), "empty"),
        (dict(reward=[1.0], pscore=[0.5], target_probs=[0.5], sessions=[1, 2]), "sessions"),
        (dict(reward=[1.0], target_probs=[0.5]), "pscore is required"),
    ],
)
def test_per_decision_form_checks(kwargs, message):
    with pytest.raises(ValueError, match=message):
        prepare_rounds(**kwargs)


def test_position_defaults_to_zero_for_single_slot_logs():
    logs = _logs(len_list=1)
    del logs["position"]
    rounds = prepare_rounds(**logs)
    np.testing.assert_allclose(rounds.target_prob, 0.25)


def test_position_is_required_with_several_slots():
    logs = _logs()
    del logs["position"]
    with pytest.raises(ValueError, match="position is required"):
        prepare_rounds(**logs)


def test_one_pass_reduction_matches_fancy_indexing():
    rng = np.random.default_rng(1)
    n, n_actions, len_list = 10_000, 5, 3
    pi = rng.dirichlet(np.ones(n_actions), size=(n, len_list)).transpose(0, 2, 1)
    q = rng.random((n, n_actions, len_list))
    action, position = rng.integers(0, n_actions, n), rng.integers(0, len_list, n)
    rounds = prepare_rounds(np.zeros(n), action, position, np.full(n, 0.2), pi, q)
    rows = np.arange(n)
    np.testing.assert_array_equal(rounds.target_prob, pi[rows, action, position])
    np.testing.assert_array_equal(rounds.q_logged, q[rows, action, position])
    np.testing.assert_allclose(rounds.v_target, (pi[rows, :, position] * q[rows, :, position]).sum(axis=1))


def test_float32_and_broadcast_arrays_are_read_without_conversion():
    logs = _logs()
    expected = prepare_rounds(**logs)
    logs["action_dist"] = np.broadcast_to(logs["action_dist"][:1].astype(np.float32), logs["action_dist"].shape)
    logs["estimated_rewards_by_reg_model"] = logs["estimated_rewards_by_reg_model"].astype(np.float32)
    got = prepare_rounds(**logs)
    np.testing.assert_allclose(got.target_prob, expected.target_prob, rtol=1e-6)
    np.testing.assert_allclose(got.v_target, expected.v_target, rtol=1e-6)
