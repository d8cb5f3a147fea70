"""Logged bandit feedback for off-policy estimators: obp-style arrays checked once and reduced to per-round values.

Two ways to give the logs, with the names and meanings of the Open Bandit Pipeline (obp) where they overlap:

obp-style (a policy over ``n_actions`` items shown in ``len_list`` slots):
    reward       (n,)  observed reward of round i (a click: 0 or 1, or any finite number)
    action       (n,)  int, the item the logging (behavior) policy showed, in [0, n_actions)
    position     (n,)  int, the slot it was shown in, in [0, len_list); omitted means all 0 (len_list must be 1)
    pscore       (n,)  the behavior policy's probability of that action at that position, in (0, 1]
    action_dist  (n, n_actions, len_list)  the EVALUATION policy's probability of each action at each position;
                 for every round and position it sums to 1 over actions
    estimated_rewards_by_reg_model  (n, n_actions, len_list)  a reward model's prediction for every action
                 and position (needed by DM and the doubly robust family)

per-decision (one entry per logged step, e.g. whole slates from the simulator):
    reward, pscore (the logging probability), target_probs (the evaluation policy's probability of the logged
    action), q_logged (the reward model at the logged action), v_target (the reward model's expectation under
    the evaluation policy); ``sessions`` (a session id per row, rows of a session contiguous and in time order)
    turns per-decision ratios into cumulative ones.

Both reduce to a ``LoggedRounds``: reward, pscore, target_prob, q_logged, v_target per row. The obp-style
reduction reads the two (n, n_actions, len_list) arrays once, checking them on the way
(``recengine.eval.ope_reduce``); float32 or float64 arrays are read as they are, without a copy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["LoggedRounds", "prepare_rounds"]

#: how far a round's action distribution may sum from 1 (a Monte Carlo distribution sums to 1 up to rounding)
_SUM_TOLERANCE = 1e-6


@dataclass(frozen=True)
class LoggedRounds:
    """Per-row arrays every estimator works from (n rows; float64)."""

    reward: np.ndarray
    """observed rewards"""
    pscore: np.ndarray
    """the behavior policy's probability of the logged action (its propensity)"""
    target_prob: np.ndarray
    """the evaluation policy's probability of the logged action (at the logged position)"""
    q_logged: np.ndarray | None = None
    """the reward model at the logged action and position; None without a reward model"""
    v_target: np.ndarray | None = None
    """the reward model's expected reward under the evaluation policy (at the logged position)"""
    sessions: np.ndarray | None = None
    """session id per row (rows of a session contiguous, in time order), or None for independent rounds"""

    def __len__(self) -> int:
        return int(self.reward.shape[0])

    def weights(self) -> np.ndarray:
        """Per-decision importance weights target_prob / pscore."""
        return self.target_prob / self.pscore


def _vector(name: str, value, n: int | None, *, dtype=np.float64) -> np.ndarray:
    if value is None:
        raise ValueError(f"{name} is required")
    a = np.asarray(value)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if n is not None and a.shape[0] != n:
        raise ValueError(f"{name} has {a.shape[0]} entries, expected {n} (one per logged round, like reward)")
    if dtype is np.int64:
        if a.dtype.kind not in "iu":
            raise ValueError(f"{name} must hold integers, got dtype {a.dtype}")
        return a.astype(np.int64, copy=False)
    a = a.astype(np.float64, copy=False)
    if not np.isfinite(a).all():
        raise ValueError(f"{name} holds NaN or inf (row {int(np.flatnonzero(~np.isfinite(a))[0])})")
    return a


def _check_pscore(pscore: np.ndarray) -> None:
    bad = np.flatnonzero((pscore <= 0) | (pscore > 1))
    if bad.size:
        raise ValueError(
            f"pscore must be in (0, 1] (the behavior policy's probability of the logged action); "
            f"row {int(bad[0])} holds {pscore[bad[0]]!r}"
        )


def _check_range(name: str, values: np.ndarray, size: int, what: str) -> None:
    bad = np.flatnonzero((values < 0) | (values >= size))
    if bad.size:
        raise ValueError(f"{name} must be in [0, {size}) ({what}); row {int(bad[0])} holds {int(values[bad[0]])}")


#: messages for the status codes of recengine.eval.ope_reduce (PI_NOT_FINITE .. Q_NOT_FINITE)
_STATUS_MESSAGES = {
    1: "action_dist holds NaN or inf (round {row})",
    2: "action_dist holds a negative probability (round {row})",
    3: "action_dist must sum to 1 over actions for every round and position (round {row})",
    4: "estimated_rewards_by_reg_model holds NaN or inf (round {row})",
}


def _reduce_obp(action_dist: np.ndarray, estimated: np.ndarray | None, action: np.ndarray, position: np.ndarray):
    """(target_prob, q_logged, v_target) per round from the (n, n_actions, len_list) arrays, in one checked pass."""
    from recengine.eval.ope_reduce import reduce_rounds  # numba: loaded when obp-style arrays are first used

    target_prob, q_logged, v_target, status = reduce_rounds(action_dist, estimated, action, position, _SUM_TOLERANCE)
    bad = np.flatnonzero(status)
    if bad.size:
        row = int(bad[0])
        raise ValueError(_STATUS_MESSAGES[int(status[row])].format(row=row))
    return target_prob, q_logged, v_target


def _array3(name: str, value, n: int) -> np.ndarray:
    a = np.asarray(value)
    if a.ndim != 3:
        raise ValueError(f"{name} must be 3-D (n_rounds, n_actions, len_list), got shape {a.shape}")
    if a.shape[0] != n:
        raise ValueError(f"{name} has {a.shape[0]} rounds, expected {n} (one per logged round, like reward)")
    return a if a.dtype in (np.float32, np.float64) else a.astype(np.float64)


def prepare_rounds(
    reward=None,
    action=None,
    position=None,
    pscore=None,
    action_dist=None,
    estimated_rewards_by_reg_model=None,
    *,
    target_probs=None,
    q_logged=None,
    v_target=None,
    sessions=None,
) -> LoggedRounds:
    """Check logged feedback (either form, see the module docstring) and reduce it to per-round arrays.

    Raises ValueError naming the offending field: lengths that differ from ``reward``'s, NaN or inf, a pscore
    outside (0, 1], an action or position outside ``action_dist``, an action distribution that does not sum
    to 1, or both forms at once.
    """
    r = _vector("reward", reward, None)
    n = r.shape[0]
    if n == 0:
        raise ValueError("reward is empty: no logged rounds")
    ps = _vector("pscore", pscore, n)
    _check_pscore(ps)
    if action_dist is not None:
        if target_probs is not None or q_logged is not None or v_target is not None:
            raise ValueError("give either action_dist (obp-style) or target_probs/q_logged/v_target, not both")
        pi = _array3("action_dist", action_dist, n)
        n_actions, len_list = pi.shape[1], pi.shape[2]
        act = _vector("action", action, n, dtype=np.int64)
        _check_range("action", act, n_actions, "an action of action_dist")
        if position is None:
            if len_list != 1:
                raise ValueError(f"position is required: action_dist has len_list={len_list} positions")
            pos = np.zeros(n, np.int64)
        else:
            pos = _vector("position", position, n, dtype=np.int64)
            _check_range("position", pos, len_list, "a position of action_dist")
        est = None
        if estimated_rewards_by_reg_model is not None:
            est = _array3("estimated_rewards_by_reg_model", estimated_rewards_by_reg_model, n)
            if est.shape != pi.shape:
                raise ValueError(
                    f"estimated_rewards_by_reg_model has shape {est.shape}, expected action_dist's {pi.shape}"
                )
        tp, q, v = _reduce_obp(pi, est, act, pos)
    else:
        if target_probs is None:
            raise ValueError("give action_dist (obp-style) or target_probs (per-decision)")
        if estimated_rewards_by_reg_model is not None:
            raise ValueError(
                "estimated_rewards_by_reg_model goes with action_dist; per-decision logs take q_logged and v_target"
            )
        tp = _vector("target_probs", target_probs, n)
        if (tp < 0).any() or (tp > 1).any():
            raise ValueError("target_probs must be probabilities in [0, 1]")
        if (q_logged is None) != (v_target is None):
            raise ValueError(
                "give q_logged and v_target together (the reward model at the logged action "
                "and its expectation under the evaluation policy)"
            )
        q = None if q_logged is None else _vector("q_logged", q_logged, n)
        v = None if v_target is None else _vector("v_target", v_target, n)
    if sessions is not None:
        sessions = np.asarray(sessions)
        if sessions.ndim != 1 or sessions.shape[0] != n:
            raise ValueError(f"sessions must be 1-D with {n} entries, got shape {sessions.shape}")
    return LoggedRounds(r, ps, tp, q, v, sessions)
