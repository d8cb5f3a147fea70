"""Per-decision logs grouped into sessions: which session and step each row is, and the cumulative importance
ratios over a session's steps (NumPy only).

The per-decision estimators (``recengine.eval.ope``) and the estimator classes (``recengine.eval.ope_estimators``)
both turn per-decision ratios w into per-session cumulative ones, ``rho_t = prod_{s <= t} w_s``, from the same
layout: a session id per row, a session's rows contiguous and in time order.
"""

from __future__ import annotations

import numpy as np

__all__ = ["session_layout", "cumulative_ratios"]


def session_layout(sessions, n: int):
    """(session index per row (0..S-1), step index within its session, S, T_max); checks contiguity."""
    s = np.asarray(sessions)
    if s.ndim != 1 or s.shape[0] != n:
        raise ValueError(f"sessions must be 1-D with {n} entries, got shape {s.shape}")
    if n == 0:
        raise ValueError("no logged steps")
    starts = np.concatenate([[True], s[1:] != s[:-1]])
    idx = np.cumsum(starts) - 1
    S = int(idx[-1]) + 1
    if len(np.unique(s)) != S:
        raise ValueError("sessions: each session's rows must be contiguous (sorted by session, then time)")
    start_pos = np.flatnonzero(starts)
    step = np.arange(n) - start_pos[idx]
    return idx, step, S, int(step.max()) + 1


def cumulative_ratios(w: np.ndarray, idx: np.ndarray, step: np.ndarray, S: int, T: int):
    """(S, T) matrix of w per (session, step), 1 where missing, and its cumulative product over steps."""
    W = np.ones((S, T))
    W[idx, step] = w
    return np.cumprod(W, axis=1)
