"""Off-policy estimators as functions of per-decision arrays (NumPy only: importing this module does not import
torch). The same estimators with obp's interface, intervals and more variants are the classes of
``recengine.eval.ope_estimators``.

The functions take per-decision arrays (one entry per logged step):

    rewards        r_i        reward observed after the logged action
    target_probs   pi(a_i|x_i)  probability the TARGET policy takes the logged action
    logging_probs  mu(a_i|x_i)  probability the LOGGING policy took it (its propensity; > 0)

estimating either

- ``sessions=None``: the value per decision ``E_{x ~ logs, a ~ pi}[r]`` (each row a one-step bandit event), or
- ``sessions`` given (session id per row; a session's rows contiguous and in time order): the expected
  return per session ``E_pi[sum_t r_t]`` of running the target policy, with per-decision importance
  ratios ``rho_t = prod_{s <= t} pi(a_s|x_s) / mu(a_s|x_s)`` (Precup et al. 2000).

``ips``      mean_i sum_t rho_it r_it                                (unbiased)
``snips``    sum_t (sum_i rho_it r_it) / (sum_i rho_it)              (self-normalised, "weighted per-decision";
                                                                      a session that ended keeps its last rho)
``doubly_robust`` mean_i sum_t [rho_it (r_it - q_it) + rho_i,t-1 v_it]  (Jiang & Li 2016; rho_i,-1 = 1)
             with a reward model q_it = r^(x_it, a_it) and v_it = E_{a ~ pi} r^(x_it, a). Unbiased for any
             reward model; the better the model, the lower the variance.
"""

from __future__ import annotations

import numpy as np

from recengine.eval.ope_sessions import cumulative_ratios, session_layout

__all__ = ["ips", "snips", "doubly_robust", "importance_weights", "effective_sample_size"]


def _as_1d(name: str, a, n: int | None = None) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if n is not None and a.shape[0] != n:
        raise ValueError(f"{name} has {a.shape[0]} entries, expected {n}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} holds NaN or inf")
    return a


def importance_weights(target_probs, logging_probs, clip: float | None = None) -> np.ndarray:
    """Per-decision ratios pi/mu (clipped above at ``clip`` when given). Raises on mu <= 0 or pi < 0."""
    pi = _as_1d("target_probs", target_probs)
    mu = _as_1d("logging_probs", logging_probs, pi.shape[0])
    if (mu <= 0).any():
        raise ValueError("logging_probs must be > 0 (the logging policy took every logged action)")
    if (pi < 0).any():
        raise ValueError("target_probs must be >= 0")
    w = pi / mu
    return np.minimum(w, clip) if clip is not None else w


def ips(rewards, target_probs, logging_probs, *, sessions=None, clip: float | None = None) -> float:
    """Inverse propensity scoring: mean of rho * r (per decision), or per session of sum_t rho_t r_t."""
    r = _as_1d("rewards", rewards)
    w = importance_weights(target_probs, logging_probs, clip)
    if w.shape != r.shape:
        raise ValueError(f"rewards ({r.shape[0]}) and the probabilities ({w.shape[0]}) differ in length")
    if sessions is None:
        return float(np.mean(w * r))
    idx, step, S, T = session_layout(sessions, r.shape[0])
    rho = cumulative_ratios(w, idx, step, S, T)[idx, step]
    return float(np.sum(rho * r) / S)


def snips(rewards, target_probs, logging_probs, *, sessions=None, clip: float | None = None) -> float:
    """Self-normalised IPS: sum(w r) / sum(w) per decision; per session the weighted per-decision form
    sum_t sum_i rho_it r_it / sum_i rho_it, where a session that has ended keeps its last ratio and reward 0."""
    r = _as_1d("rewards", rewards)
    w = importance_weights(target_probs, logging_probs, clip)
    if w.shape != r.shape:
        raise ValueError(f"rewards ({r.shape[0]}) and the probabilities ({w.shape[0]}) differ in length")
    if sessions is None:
        total = w.sum()
        return float(np.sum(w * r) / total) if total > 0 else 0.0
    idx, step, S, T = session_layout(sessions, r.shape[0])
    rho = cumulative_ratios(w, idx, step, S, T)  # missing steps hold 1 -> the product keeps its last value
    R = np.zeros((S, T))
    R[idx, step] = r
    num = (rho * R).sum(axis=0)
    den = rho.sum(axis=0)
    return float(np.sum(np.divide(num, den, out=np.zeros(T), where=den > 0)))


def doubly_robust(
    rewards, target_probs, logging_probs, q_logged, v_target, *, sessions=None, clip: float | None = None
) -> float:
    """Doubly robust: the reward model's prediction for the target plus the importance-weighted residual.

    ``q_logged`` r^(x_i, a_i), the model's reward for the logged action; ``v_target`` E_{a ~ pi} r^(x_i, a),
    its expected reward under the target policy in the same context.
    Per decision: mean(v + w (r - q)); per session: mean_i sum_t [rho_t (r_t - q_t) + rho_{t-1} v_t].
    """
    r = _as_1d("rewards", rewards)
    w = importance_weights(target_probs, logging_probs, clip)
    if w.shape != r.shape:
        raise ValueError(f"rewards ({r.shape[0]}) and the probabilities ({w.shape[0]}) differ in length")
    q = _as_1d("q_logged", q_logged, r.shape[0])
    v = _as_1d("v_target", v_target, r.shape[0])
    if sessions is None:
        return float(np.mean(v + w * (r - q)))
    idx, step, S, T = session_layout(sessions, r.shape[0])
    cum = cumulative_ratios(w, idx, step, S, T)
    rho = cum[idx, step]
    prev = np.where(step > 0, cum[idx, np.maximum(step - 1, 0)], 1.0)
    return float(np.sum(rho * (r - q) + prev * v) / S)


def effective_sample_size(weights) -> float:
    """Kish's effective sample size of importance weights: (sum w)^2 / sum w^2 (n when all weights are equal)."""
    w = np.asarray(weights, dtype=np.float64)
    total_sq = float(np.square(w).sum())
    return float(w.sum() ** 2 / total_sq) if total_sq > 0 else 0.0
