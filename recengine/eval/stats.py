"""Confidence intervals for per-session returns, alone and paired (common random numbers).

    mean_ci([1, 2, 3, 4])              # {"mean": 2.5, "stderr": 0.645..., "ci_low": ..., "ci_high": ..., "n": 4}
    paired_diff(agent, baseline)       # the same for agent[i] - baseline[i]

Every agent in `recengine compare` is evaluated on the same simulated sessions (same users, same random
draws for clicks and session ends), so session i of two agents differs only by the policy: the difference of
the two means is best estimated from the per-session differences, whose spread is far smaller than either
agent's own. The intervals are the large-sample normal ones, mean ± z · s / sqrt(n) (s the sample standard
deviation, ddof 1): they serve n of a hundred sessions and more, where Student's t differs by under 1%.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np


def z_value(level: float = 0.95) -> float:
    """The two-sided normal quantile of `level` (1.95996... for 0.95)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    return NormalDist().inv_cdf(0.5 + level / 2)


def t_value(level: float, df: int) -> float:
    """The two-sided quantile of Student's t with `df` degrees of freedom (4.3027 for 0.95 and df 2), by
    bisection on its CDF in closed form for integer df (Abramowitz & Stegun 26.7.3-4); for the few-seed
    intervals, where the normal quantile would be far too narrow."""
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df}")
    target = level  # P(|T| <= x) = level

    def central(x):  # P(|T| <= x)
        theta = math.atan(x / math.sqrt(df))
        c2 = math.cos(theta) ** 2
        term, total = 1.0, 1.0
        if df % 2 == 0:
            for j in range(1, df // 2):
                term *= c2 * (2 * j - 1) / (2 * j)
                total += term
            return math.sin(theta) * total
        if df == 1:
            return 2 * theta / math.pi
        for j in range(1, (df - 1) // 2):
            term *= c2 * (2 * j) / (2 * j + 1)
            total += term
        return 2 / math.pi * (theta + math.sin(theta) * math.cos(theta) * total)

    z_value(level)  # validates level
    lo, hi = 0.0, 1e6
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if central(mid) < target else (lo, mid)
    return (lo + hi) / 2


def mean_ci(values, level: float = 0.95) -> dict:
    """{"mean", "stderr", "ci_low", "ci_high", "n"} of the 1-D `values` (stderr = s / sqrt(n), s with ddof 1;
    with one value the stderr and the interval are NaN)."""
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if x.size == 0:
        raise ValueError("values: need at least one value")
    if not np.isfinite(x).all():
        raise ValueError("values: must be finite")
    mean = float(x.mean())
    stderr = float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else float("nan")
    half = z_value(level) * stderr
    return {"mean": mean, "stderr": stderr, "ci_low": mean - half, "ci_high": mean + half, "n": int(x.size)}


def paired_diff(values, baseline, level: float = 0.95) -> dict:
    """mean_ci of values[i] − baseline[i]: the difference of two policies measured on the same sessions."""
    a = np.asarray(values, dtype=np.float64).reshape(-1)
    b = np.asarray(baseline, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"values and baseline must pair up session by session, got {a.size} and {b.size}")
    return mean_ci(a - b, level)


def paired_ratio(numerator, denominator, level: float = 0.95) -> dict:
    """The ratio of two per-session means, mean(numerator) / mean(denominator), where numerator[i] and
    denominator[i] come from the same session (e.g. agent − large model over oracle − large model: the share of
    the oracle's lead that the agent closes), with its delta-method interval:
    stderr = s(numerator − ratio · denominator) / (sqrt(n) · |mean(denominator)|).

    {"ratio", "stderr", "ci_low", "ci_high", "n", "denominator_separated"}: the last is False when the
    denominator's own interval holds 0, and the ratio is then not identified (ratio and interval NaN)."""
    x = np.asarray(numerator, dtype=np.float64).reshape(-1)
    y = np.asarray(denominator, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"numerator and denominator must pair up session by session, got {x.size} and {y.size}")
    den = mean_ci(y, level)
    separated = bool(den["ci_low"] > 0 or den["ci_high"] < 0)
    nan = float("nan")
    if not separated or x.size < 2:
        return {
            "ratio": nan,
            "stderr": nan,
            "ci_low": nan,
            "ci_high": nan,
            "n": int(x.size),
            "denominator_separated": separated,
        }
    ratio = float(x.mean() / y.mean())
    stderr = float((x - ratio * y).std(ddof=1) / (math.sqrt(x.size) * abs(y.mean())))
    half = z_value(level) * stderr
    return {
        "ratio": ratio,
        "stderr": stderr,
        "ci_low": ratio - half,
        "ci_high": ratio + half,
        "n": int(x.size),
        "denominator_separated": True,
    }
