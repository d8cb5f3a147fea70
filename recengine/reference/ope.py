"""Plain NumPy off-policy estimators written the way obp writes them: the oracle tests and benchmarks share.

One function per estimator on obp-style arrays (``reward``, ``action``, ``position``, ``pscore``,
``action_dist`` and ``estimated_rewards_by_reg_model`` of shape (n, n_actions, len_list)), each computing its
own fancy-indexed slices of the full arrays, no checks, no sharing between estimators: obviously correct and
what a user of obp runs today. ``recengine.eval.ope_estimators`` must agree with these.
"""

from __future__ import annotations

import numpy as np

__all__ = ["reference_estimate", "REFERENCE_ESTIMATORS"]


def _weights(action, position, pscore, action_dist):
    return action_dist[np.arange(action.shape[0]), action, position] / pscore


def _dm_part(position, action_dist, estimated):
    rows = np.arange(position.shape[0])
    q_at_position = estimated[rows, :, position]
    pi_at_position = action_dist[rows, :, position]
    return np.average(q_at_position, weights=pi_at_position, axis=1)


def _factual(action, position, estimated):
    return estimated[np.arange(action.shape[0]), action, position]


def dm(reward, action, position, pscore, action_dist, estimated, lambda_=None):
    return float(np.mean(_dm_part(position, action_dist, estimated)))


def ips(reward, action, position, pscore, action_dist, estimated=None, lambda_=None):
    w = _weights(action, position, pscore, action_dist)
    if lambda_ is not None:
        w = np.minimum(w, lambda_)
    return float(np.mean(w * reward))


def snips(reward, action, position, pscore, action_dist, estimated=None, lambda_=None):
    w = _weights(action, position, pscore, action_dist)
    if lambda_ is not None:
        w = np.minimum(w, lambda_)
    return float(np.mean(w * reward / np.mean(w)))


def dr(reward, action, position, pscore, action_dist, estimated, lambda_=None):
    w = _weights(action, position, pscore, action_dist)
    if lambda_ is not None:
        w = np.minimum(w, lambda_)
    q = _factual(action, position, estimated)
    return float(np.mean(_dm_part(position, action_dist, estimated) + w * (reward - q)))


def sndr(reward, action, position, pscore, action_dist, estimated, lambda_=None):
    w = _weights(action, position, pscore, action_dist)
    if lambda_ is not None:
        w = np.minimum(w, lambda_)
    q = _factual(action, position, estimated)
    return float(np.mean(_dm_part(position, action_dist, estimated) + w / np.mean(w) * (reward - q)))


def switch_dr(reward, action, position, pscore, action_dist, estimated, lambda_=np.inf):
    w = _weights(action, position, pscore, action_dist)
    q = _factual(action, position, estimated)
    switch = (w <= lambda_).astype(int)
    return float(np.mean(_dm_part(position, action_dist, estimated) + switch * w * (reward - q)))


def dros(reward, action, position, pscore, action_dist, estimated, lambda_=np.inf):
    w = _weights(action, position, pscore, action_dist)
    q = _factual(action, position, estimated)
    shrunk = w if np.isinf(lambda_) else (lambda_ * w) / (w**2 + lambda_)
    return float(np.mean(_dm_part(position, action_dist, estimated) + shrunk * (reward - q)))


#: reference function by the estimator's short name in recengine.eval.ope_estimators.ESTIMATORS
REFERENCE_ESTIMATORS = {
    "dm": dm,
    "ips": ips,
    "snips": snips,
    "dr": dr,
    "sndr": sndr,
    "switch-dr": switch_dr,
    "dros": dros,
}


def reference_estimate(name: str, reward, action, position, pscore, action_dist, estimated=None, lambda_=None) -> float:
    """The reference estimate of estimator ``name``; ``lambda_`` is the clip (IPS, SNIPS, DR, SNDR), the
    switch threshold (Switch-DR) or the shrinkage (DRos), None for none."""
    fn = REFERENCE_ESTIMATORS[name]
    if lambda_ is None and name in ("switch-dr", "dros"):
        lambda_ = np.inf
    return fn(reward, action, position, pscore, action_dist, estimated, lambda_)
