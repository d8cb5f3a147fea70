"""Sessions from timestamps, and the leaving / returning model fitted to them.

A user's events (in time order) are cut into sessions wherever two consecutive events are more than
``gap_seconds`` apart (default 30 minutes: the inactivity timeout web analytics use for a visit; on rating logs
it separates sittings, since one sitting's ratings come seconds to minutes apart). A session's length is its number
of events (ratings = clicks).

Leaving: session lengths follow a mixture of two geometric distributions,

    P(L = n) = w · p1 (1 − p1)^(n−1) + (1 − w) · p2 (1 − p2)^(n−1),      n = 1, 2, ...

(a population of short sittings and one of long ones; a single geometric cannot fit the heavy tail of real
sittings). Its per-click quit hazard ``h(n) = P(L = n) / P(L >= n)`` is what the simulator applies after the n-th
click of a session. Fitted by EM (maximum likelihood).

Returning: ``log(gap to the next session) = a + b · log(length of the last session)`` by least squares, reported
(with R²) as a description of the logs; the simulator restarts sessions without a clock.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from recengine.ops._checks import check_int, check_number

__all__ = [
    "SESSION_GAP_SECONDS",
    "SessionModel",
    "split_sessions",
    "fit_session_model",
    "session_fit_table",
    "fit_return_model",
]

#: default inactivity gap that starts a new session
SESSION_GAP_SECONDS = 30 * 60

#: upper edges of the length bins of the goodness-of-fit table (the last bin is open)
_BIN_EDGES = (1, 2, 4, 8, 16, 32, 64, 128)


def split_sessions(offsets, timestamps, ends=None, *, gap_seconds: float = SESSION_GAP_SECONDS):
    """Sessions of CSR time-ordered events: user u's events are ``timestamps[offsets[u]:ends[u]]``.

    ``ends`` defaults to ``offsets[1:]`` (every event); pass a split's ``train_end`` to use training events only.
    Returns ``(lengths (S,) int64, owners (S,) int64, starts (S,) int64, stops (S,) int64)``: each session's
    number of events, its user and the timestamps of its first and last event, users in order, sessions in time
    order within a user.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    ts = np.asarray(timestamps, dtype=np.int64)
    ends = offsets[1:] if ends is None else np.asarray(ends, dtype=np.int64)
    if offsets.ndim != 1 or ends.shape != (offsets.size - 1,):
        raise ValueError(f"offsets must be (U+1,) and ends (U,), got {offsets.shape}, {ends.shape}")
    if np.any(ends < offsets[:-1]) or np.any(ends > offsets[1:]):
        raise ValueError("ends: every end must lie between its user's offsets")
    if gap_seconds <= 0:
        raise ValueError(f"gap_seconds must be > 0, got {gap_seconds}")
    counts = ends - offsets[:-1]
    owner = np.repeat(np.arange(counts.size), counts)
    idx = np.repeat(offsets[:-1] - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts) + np.arange(owner.size)
    t = ts[idx]
    if np.any((np.diff(t) < 0) & (owner[1:] == owner[:-1])):
        raise ValueError("timestamps must be in time order within each user")
    new = np.ones(owner.size, bool)
    new[1:] = (owner[1:] != owner[:-1]) | (np.diff(t) > gap_seconds)
    first = np.flatnonzero(new)
    last = np.concatenate([first[1:], [owner.size]]) - 1
    return (last - first + 1).astype(np.int64), owner[first], t[first], t[last]


@dataclass(frozen=True)
class SessionModel:
    """Mixture of two geometric session lengths (see the module docstring); ``p_short >= p_long``."""

    weight_short: float
    p_short: float
    p_long: float
    #: sessions and events it was fitted to, and the inactivity gap that defined them
    num_sessions: int = 0
    gap_seconds: float = SESSION_GAP_SECONDS

    def __post_init__(self):
        check_number("weight_short", self.weight_short, minimum=0.0, maximum=1.0)
        for name in ("p_short", "p_long"):
            check_number(name, getattr(self, name), minimum=0.0, exclusive=True, maximum=1.0)
        check_int("num_sessions", self.num_sessions, minimum=0)
        check_number("gap_seconds", self.gap_seconds, minimum=0.0, exclusive=True)

    def pmf(self, n) -> np.ndarray:
        """P(L = n) for lengths n >= 1."""
        n = np.asarray(n, dtype=np.float64)
        w = self.weight_short
        return w * self.p_short * (1 - self.p_short) ** (n - 1) + (1 - w) * self.p_long * (1 - self.p_long) ** (n - 1)

    def survival(self, n) -> np.ndarray:
        """P(L >= n) for n >= 1."""
        n = np.asarray(n, dtype=np.float64)
        w = self.weight_short
        return w * (1 - self.p_short) ** (n - 1) + (1 - w) * (1 - self.p_long) ** (n - 1)

    def hazard(self, max_clicks: int) -> np.ndarray:
        """(max_clicks + 1,) float64: entry n is P(the session ends right after its n-th click) (entry 0 is 0)."""
        n = np.arange(1, max_clicks + 1)
        h = np.zeros(max_clicks + 1)
        h[1:] = self.pmf(n) / np.maximum(self.survival(n), 1e-300)
        return np.clip(h, 0.0, 1.0)

    def mean_length(self) -> float:
        return float(self.weight_short / self.p_short + (1 - self.weight_short) / self.p_long)

    def to_dict(self) -> dict:
        return asdict(self)


def fit_session_model(lengths, *, iterations: int = 500, gap_seconds: float = SESSION_GAP_SECONDS) -> SessionModel:
    """Maximum-likelihood mixture of two geometrics for session lengths (>= 1), by EM from a spread start."""
    n = np.asarray(lengths, dtype=np.float64).reshape(-1)
    if n.size == 0:
        raise ValueError("lengths: need at least one session")
    if np.any(n < 1) or np.any(n != np.round(n)):
        raise ValueError("lengths: session lengths must be integers >= 1")
    mean = float(n.mean())
    if np.all(n == 1):
        return SessionModel(1.0, 1.0, 1.0, int(n.size), gap_seconds)
    p = np.clip(np.array([2.0 / mean, 0.5 / mean]), 1e-4, 1 - 1e-4)
    p[0] = max(p[0], min(0.9, 1 / np.median(n)))
    w = np.array([0.5, 0.5])
    for _ in range(iterations):
        log_comp = np.log(w)[None, :] + np.log(p)[None, :] + (n[:, None] - 1) * np.log1p(-p)[None, :]
        log_comp -= log_comp.max(1, keepdims=True)
        r = np.exp(log_comp)
        r /= r.sum(1, keepdims=True)
        mass = r.sum(0)
        w = np.clip(mass / n.size, 1e-9, 1.0)
        w /= w.sum()
        p = np.clip(mass / np.maximum((r * n[:, None]).sum(0), 1e-12), 1e-6, 1.0 - 1e-9)
    short = int(np.argmax(p))
    return SessionModel(float(w[short]), float(p[short]), float(p[1 - short]), int(n.size), gap_seconds)


def session_fit_table(lengths, model: SessionModel) -> dict:
    """Observed vs fitted share of sessions per length bin (1, 2, 3-4, 5-8, ..., >128), the largest CDF gap
    (Kolmogorov distance over lengths) and the observed and fitted mean length."""
    n = np.asarray(lengths, dtype=np.int64).reshape(-1)
    bins, lo = [], 1
    for hi in _BIN_EDGES + (None,):
        if hi is None:
            obs = float((n >= lo).mean())
            fit = float(model.survival(lo))
            label = f">={lo}"
        else:
            obs = float(((n >= lo) & (n <= hi)).mean())
            fit = float(model.survival(lo) - model.survival(hi + 1))
            label = f"{lo}" if lo == hi else f"{lo}-{hi}"
            lo = hi + 1
        bins.append({"lengths": label, "observed": obs, "fitted": fit})
    top = int(n.max())
    grid = np.arange(1, top + 1)
    observed_cdf = np.cumsum(np.bincount(n, minlength=top + 1)[1:]) / n.size
    fitted_cdf = 1.0 - model.survival(grid + 1)
    return {
        "bins": bins,
        "ks_distance": float(np.abs(observed_cdf - fitted_cdf).max()),
        "observed_mean": float(n.mean()),
        "fitted_mean": model.mean_length(),
    }


def fit_return_model(lengths, owners, starts, stops) -> dict:
    """Least squares ``log(hours to the next session) = a + b · log(last session length)`` over consecutive
    sessions of one user (the output of split_sessions). Returns {"intercept", "slope", "r2", "pairs",
    "median_gap_hours"}; NaNs when fewer than 3 pairs."""
    lengths, owners = np.asarray(lengths), np.asarray(owners)
    starts, stops = np.asarray(starts, dtype=np.float64), np.asarray(stops, dtype=np.float64)
    same = owners[1:] == owners[:-1]
    gap_hours = (starts[1:] - stops[:-1])[same] / 3600.0
    x = np.log(lengths[:-1][same].astype(np.float64))
    keep = gap_hours > 0
    x, y = x[keep], np.log(gap_hours[keep])
    if x.size < 3:
        nan = float("nan")
        return {"intercept": nan, "slope": nan, "r2": nan, "pairs": int(x.size), "median_gap_hours": nan}
    design = np.stack([np.ones_like(x), x], 1)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    total = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((resid**2).sum()) / total if total > 0 else float("nan")
    return {
        "intercept": float(coef[0]),
        "slope": float(coef[1]),
        "r2": r2,
        "pairs": int(x.size),
        "median_gap_hours": float(np.exp(np.median(y))),
    }
