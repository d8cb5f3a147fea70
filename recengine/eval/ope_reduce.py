"""One pass over obp-style (n_rounds, n_actions, len_list) arrays: checks and per-round values together.

Every estimator needs only three numbers per round from the two big arrays: the evaluation policy's
probability of the logged action, the reward model there, and the reward model's expectation under the
evaluation policy at the logged position. This numba kernel reads each round's block of both arrays once
(checking it is finite, and that the action distribution is non-negative and sums to 1 at every position)
and writes those three numbers; rounds run in parallel. Problems are reported per round as a code, which the
caller turns into an error naming the field.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["OK", "PI_NOT_FINITE", "PI_NEGATIVE", "PI_NOT_NORMALISED", "Q_NOT_FINITE", "reduce_rounds"]

OK, PI_NOT_FINITE, PI_NEGATIVE, PI_NOT_NORMALISED, Q_NOT_FINITE = 0, 1, 2, 3, 4


@numba.njit(cache=True, parallel=True)
def _reduce(pi, q, has_q, action, position, tol, target_prob, q_logged, v_target, status):  # pragma: no cover
    n, n_actions, len_list = pi.shape
    for i in numba.prange(n):
        a, p = action[i], position[i]
        code = 0
        v = 0.0
        for pos in range(len_list):
            total = 0.0
            for j in range(n_actions):
                x = pi[i, j, pos]
                if not np.isfinite(x):
                    code = 1 if code == 0 else code
                elif x < 0.0:
                    code = 2 if code == 0 else code
                total += x
                if has_q:
                    y = q[i, j, pos]
                    if not np.isfinite(y):
                        code = 4 if code == 0 else code
                    elif pos == p:
                        v += x * y
            if code == 0 and abs(total - 1.0) > tol:
                code = 3
        target_prob[i] = pi[i, a, p]
        if has_q:
            q_logged[i] = q[i, a, p]
            v_target[i] = v
        status[i] = code


def reduce_rounds(
    action_dist: np.ndarray, estimated: np.ndarray | None, action: np.ndarray, position: np.ndarray, tol: float
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray]:
    """(target_prob, q_logged, v_target, status) per round; ``status`` holds OK or the first problem found in
    that round. ``action`` and ``position`` must already be in range (they index the arrays)."""
    n = action.shape[0]
    has_q = estimated is not None
    q = estimated if has_q else action_dist
    target_prob, status = np.empty(n), np.empty(n, np.int8)
    q_logged, v_target = (np.empty(n), np.empty(n)) if has_q else (np.empty(0), np.empty(0))
    _reduce(action_dist, q, has_q, action, position, float(tol), target_prob, q_logged, v_target, status)
    return target_prob, (q_logged if has_q else None), (v_target if has_q else None), status
