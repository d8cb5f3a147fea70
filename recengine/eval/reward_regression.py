"""A reward model for logged bandit feedback: context features x action x position -> expected reward.

What DM and the doubly robust estimators need as ``estimated_rewards_by_reg_model`` when the logs come from
outside the simulator. As in obp's ``RegressionModel``, one model per position over the features
[context, action features] (the action's one-hot vector unless ``action_context`` is given), either logistic
(rewards in [0, 1], such as clicks; L2-regularised, fitted by Newton's method) or linear (ridge, closed form).

``cross_fitted_rewards`` predicts every round with a model that never saw it (K-fold cross-fitting), which keeps
the doubly robust correction free of the model's own overfitting to those rounds. NumPy only.
"""

from __future__ import annotations

import numpy as np

__all__ = ["RewardRegression", "cross_fitted_rewards"]

_KINDS = ("logistic", "linear")


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _fit_logistic(X: np.ndarray, y: np.ndarray, l2: float, max_iter: int, tol: float) -> np.ndarray:
    """Weights (intercept last) minimising the mean log-loss + l2/2 |w|^2 (intercept unpenalised), by Newton."""
    n, d = X.shape
    A = np.column_stack([X, np.ones(n)])
    penalty = np.full(d + 1, l2)
    penalty[-1] = 0.0
    w = np.zeros(d + 1)
    mean = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
    w[-1] = np.log(mean / (1 - mean))
    for _ in range(max_iter):
        p = _sigmoid(A @ w)
        grad = A.T @ (p - y) / n + penalty * w
        hess = (A * (p * (1 - p))[:, None]).T @ A / n + np.diag(penalty) + 1e-10 * np.eye(d + 1)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.max(np.abs(step)) < tol:
            break
    return w


def _fit_linear(X: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    n, d = X.shape
    A = np.column_stack([X, np.ones(n)])
    penalty = np.full(d + 1, l2 * n)
    penalty[-1] = 0.0
    return np.linalg.solve(A.T @ A + np.diag(penalty) + 1e-10 * np.eye(d + 1), A.T @ y)


class RewardRegression:
    """Expected reward of each action at each position given a context: ``fit`` on logged rounds, ``predict``
    an (n, n_actions, len_list) array (obp's ``estimated_rewards_by_reg_model``).

    The model's score is separable, context part plus action part, per position: it ranks actions the same
    way for every context, shifted by the context, like obp's default regression over concatenated features.
    """

    def __init__(
        self,
        n_actions: int,
        len_list: int = 1,
        *,
        action_context=None,
        kind: str = "logistic",
        l2: float = 1e-2,
        max_iter: int = 50,
        tol: float = 1e-8,
    ):
        if n_actions < 1 or len_list < 1:
            raise ValueError(f"n_actions and len_list must be >= 1, got {n_actions}, {len_list}")
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
        if l2 < 0:
            raise ValueError(f"l2 must be >= 0, got {l2}")
        self.n_actions, self.len_list, self.kind = int(n_actions), int(len_list), kind
        self.l2, self.max_iter, self.tol = float(l2), int(max_iter), float(tol)
        if action_context is None:
            self.action_context = np.eye(self.n_actions)
        else:
            self.action_context = np.asarray(action_context, dtype=np.float64)
            if self.action_context.ndim != 2 or self.action_context.shape[0] != self.n_actions:
                raise ValueError(
                    f"action_context must be (n_actions={n_actions}, d), got shape {self.action_context.shape}"
                )
        self.weights: list[np.ndarray] | None = None

    def _check(self, context, action=None, position=None, reward=None):
        X = np.asarray(context, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"context must be 2-D (n_rounds, dim_context), got shape {X.shape}")
        if not np.isfinite(X).all():
            raise ValueError("context holds NaN or inf")
        if action is None:
            return X
        n = X.shape[0]
        out = [X]
        for name, value, size in (("action", action, self.n_actions), ("position", position, self.len_list)):
            a = (
                np.zeros(n, np.int64)
                if value is None and name == "position" and self.len_list == 1
                else np.asarray(value)
            )
            if a.shape != (n,):
                raise ValueError(f"{name} must have shape ({n},) like context's rounds, got {a.shape}")
            if a.dtype.kind not in "iu" or (a < 0).any() or (a >= size).any():
                raise ValueError(f"{name} must hold integers in [0, {size})")
            out.append(a.astype(np.int64))
        r = np.asarray(reward, dtype=np.float64)
        if r.shape != (n,):
            raise ValueError(f"reward must have shape ({n},) like context's rounds, got {r.shape}")
        if not np.isfinite(r).all():
            raise ValueError("reward holds NaN or inf")
        if self.kind == "logistic" and ((r < 0) | (r > 1)).any():
            raise ValueError("reward must be in [0, 1] for the logistic model (use kind='linear')")
        return (*out, r)

    def fit(self, context, action, position, reward) -> RewardRegression:
        """Fit one model per position on the rounds logged at that position (``position`` None: one slot)."""
        X, a, p, r = self._check(context, action, position, reward)
        weights = []
        for pos in range(self.len_list):
            rows = p == pos
            if not rows.any():
                raise ValueError(f"position: no logged rounds at position {pos} to fit its model")
            feats = np.column_stack([X[rows], self.action_context[a[rows]]])
            if self.kind == "logistic":
                weights.append(_fit_logistic(feats, r[rows], self.l2, self.max_iter, self.tol))
            else:
                weights.append(_fit_linear(feats, r[rows], self.l2))
        self.weights = weights
        return self

    def predict(self, context) -> np.ndarray:
        """(n, n_actions, len_list) expected rewards for every action at every position."""
        if self.weights is None:
            raise RuntimeError("fit the model before predict")
        X = self._check(context)
        d = X.shape[1]
        out = np.empty((X.shape[0], self.n_actions, self.len_list))
        for pos, w in enumerate(self.weights):
            if w.shape[0] != d + self.action_context.shape[1] + 1:
                raise ValueError(
                    f"context has {d} features, the model was fitted on {w.shape[0] - self.action_context.shape[1] - 1}"
                )
            score = (X @ w[:d])[:, None] + (self.action_context @ w[d:-1])[None, :] + w[-1]
            out[:, :, pos] = _sigmoid(score) if self.kind == "logistic" else score
        return out


def cross_fitted_rewards(
    context,
    action,
    position,
    reward,
    *,
    n_actions: int,
    len_list: int = 1,
    n_folds: int = 3,
    action_context=None,
    kind: str = "logistic",
    l2: float = 1e-2,
    random_state: int | None = 0,
) -> np.ndarray:
    """(n, n_actions, len_list) predictions where each round's row comes from a ``RewardRegression`` fitted on
    the other folds (rounds split at random into ``n_folds`` folds by ``np.random.default_rng(random_state)``).
    ``n_folds=1`` fits and predicts on all rounds (no cross-fitting)."""
    X = np.asarray(context, dtype=np.float64)
    n = X.shape[0] if X.ndim == 2 else -1
    if not 1 <= n_folds <= max(n, 1):
        raise ValueError(f"n_folds must be in [1, n_rounds={n}], got {n_folds}")
    make = lambda: RewardRegression(n_actions, len_list, action_context=action_context, kind=kind, l2=l2)  # noqa: E731
    if n_folds == 1:
        return make().fit(X, action, position, reward).predict(X)
    fold = np.random.default_rng(random_state).permutation(n) % n_folds
    a, r = np.asarray(action), np.asarray(reward)
    p = np.zeros(n, np.int64) if position is None else np.asarray(position)
    out = np.empty((n, n_actions, len_list))
    for k in range(n_folds):
        test = fold == k
        model = make().fit(X[~test], a[~test], p[~test], r[~test])
        out[test] = model.predict(X[test])
    return out
