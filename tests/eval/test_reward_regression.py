"""The reward model for external logs: it recovers a known click model, and cross-fitting keeps each round out
of the model that predicts it."""

from __future__ import annotations

import numpy as np
import pytest

from recengine.eval.reward_regression import RewardRegression, cross_fitted_rewards


def _clicks(n: int, seed: int = 0):
    """Contexts of 3 features, 4 actions, 2 positions; P(click) = sigmoid(ctx.beta + action effect + position)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    action, position = rng.integers(0, 4, n), rng.integers(0, 2, n)
    beta, effect, shift = np.array([0.8, -0.5, 0.3]), np.array([-1.0, 0.0, 0.5, 1.0]), np.array([0.0, -0.7])
    logit = X @ beta + effect[action] + shift[position] - 1.0
    reward = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.float64)
    truth = 1 / (1 + np.exp(-((X @ beta)[:, None, None] + effect[None, :, None] + shift[None, None, :] - 1.0)))
    return X, action, position, reward, truth


def test_logistic_model_recovers_a_known_click_model():
    X, a, p, r, truth = _clicks(30000)
    pred = RewardRegression(4, 2, l2=1e-4).fit(X, a, p, r).predict(X)
    assert pred.shape == (30000, 4, 2)
    assert np.abs(pred - truth).mean() < 0.02


def test_linear_model_without_penalty_is_least_squares():
    X, a, p, r, _ = _clicks(500)
    pred = RewardRegression(4, 2, kind="linear", l2=0.0).fit(X, a, p, r).predict(X)
    rows = p == 1
    A = np.column_stack([X[rows], np.eye(4)[a[rows]]])
    coef, *_ = np.linalg.lstsq(A, r[rows], rcond=None)  # the one-hot actions already span the intercept
    np.testing.assert_allclose(pred[rows, a[rows], 1], A @ coef, atol=1e-6)


def test_cross_fitting_predicts_a_round_without_its_own_reward():
    X, a, p, r, _ = _clicks(600)
    before = cross_fitted_rewards(X, a, p, r, n_actions=4, len_list=2, n_folds=3, random_state=1)
    flipped = r.copy()
    flipped[0] = 1.0 - flipped[0]
    after = cross_fitted_rewards(X, a, p, flipped, n_actions=4, len_list=2, n_folds=3, random_state=1)
    fold = np.random.default_rng(1).permutation(600) % 3
    same_fold = fold == fold[0]
    np.testing.assert_array_equal(after[same_fold], before[same_fold])  # row 0 and its fold: models without it
    assert not np.allclose(after[~same_fold], before[~same_fold])  # the other folds' models saw the change


def test_action_context_replaces_the_one_hot_actions():
    X, a, p, r, _ = _clicks(2000)
    one_hot = RewardRegression(4, 2).fit(X, a, p, r).predict(X)
    same = RewardRegression(4, 2, action_context=np.eye(4)).fit(X, a, p, r).predict(X)
    np.testing.assert_allclose(same, one_hot)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(kind="tree"), "kind"),
        (dict(l2=-1.0), "l2"),
        (dict(action_context=np.ones((3, 2))), "action_context"),
    ],
)
def test_bad_settings_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RewardRegression(4, 2, **kwargs)


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("context", np.ones(10), "context must be 2-D"),
        ("action", np.full(10, 4), "action must hold integers in \\[0, 4\\)"),
        ("position", np.zeros(9, np.int64), "position must have shape"),
        ("reward", np.full(10, np.nan), "reward holds NaN"),
        ("reward", np.full(10, 2.0), "reward must be in \\[0, 1\\]"),
    ],
)
def test_bad_logs_are_rejected(field, value, message):
    X, a, p, r, _ = _clicks(10)
    args = dict(context=X, action=a, position=p, reward=r)
    args[field] = value
    with pytest.raises(ValueError, match=message):
        RewardRegression(4, 2).fit(**args)


def test_a_position_without_rounds_is_reported():
    X, a, p, r, _ = _clicks(50)
    with pytest.raises(ValueError, match="no logged rounds at position 1"):
        RewardRegression(4, 2).fit(X, a, np.zeros(50, np.int64), r)


def test_predict_needs_a_fitted_model():
    with pytest.raises(RuntimeError, match="fit"):
        RewardRegression(4, 2).predict(np.ones((2, 3)))
