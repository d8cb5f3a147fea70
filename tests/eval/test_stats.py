"""Confidence intervals of per-session returns and paired differences against hand-computed values."""

import math

import numpy as np
import pytest

from recengine.eval.stats import mean_ci, paired_diff, paired_ratio, t_value, z_value


def test_z_value():
    assert z_value(0.95) == pytest.approx(1.959964, abs=1e-6)
    assert z_value(0.90) == pytest.approx(1.644854, abs=1e-6)
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="level"):
            z_value(bad)


def test_t_value_against_tables():
    for df, expected in ((1, 12.706205), (2, 4.302653), (3, 3.182446), (4, 2.776445), (10, 2.228139), (30, 2.042272)):
        assert t_value(0.95, df) == pytest.approx(expected, abs=1e-6), df
    assert t_value(0.90, 5) == pytest.approx(2.015048, abs=1e-6)
    assert z_value(0.95) < t_value(0.95, 1000) < t_value(0.95, 100)
    with pytest.raises(ValueError, match="df"):
        t_value(0.95, 0)


def test_mean_ci_hand_values():
    # mean 2.5, s = sqrt(5/3) = 1.290994, stderr = s / 2 = 0.645497, half-width 1.959964 * 0.645497 = 1.265151
    ci = mean_ci([1, 2, 3, 4])
    assert ci["n"] == 4 and ci["mean"] == pytest.approx(2.5)
    assert ci["stderr"] == pytest.approx(0.645497, abs=1e-6)
    assert ci["ci_low"] == pytest.approx(1.234849, abs=1e-6) and ci["ci_high"] == pytest.approx(3.765151, abs=1e-6)
    narrow = mean_ci([1, 2, 3, 4], level=0.5)
    assert ci["ci_low"] < narrow["ci_low"] < narrow["mean"] < narrow["ci_high"] < ci["ci_high"]


def test_mean_ci_edge_cases():
    one = mean_ci([3.0])
    assert one["mean"] == 3.0 and math.isnan(one["stderr"]) and math.isnan(one["ci_low"])
    same = mean_ci([2.0] * 5)
    assert same["stderr"] == 0.0 and same["ci_low"] == same["ci_high"] == 2.0
    with pytest.raises(ValueError, match="at least one"):
        mean_ci([])
    with pytest.raises(ValueError, match="finite"):
        mean_ci([1.0, float("nan")])


def test_paired_diff_hand_values():
    # differences 2, 3, 1, 2: mean 2, s = sqrt(2/3) = 0.816497, stderr 0.408248, half-width 0.800152
    d = paired_diff([3, 5, 4, 6], [1, 2, 3, 4])
    assert d["mean"] == pytest.approx(2.0) and d["stderr"] == pytest.approx(0.408248, abs=1e-6)
    assert d["ci_low"] == pytest.approx(1.199848, abs=1e-6) and d["ci_high"] == pytest.approx(2.800152, abs=1e-6)
    with pytest.raises(ValueError, match="pair up"):
        paired_diff([1, 2, 3], [1, 2])


def test_pairing_removes_the_shared_session_noise():
    """Two policies on the same sessions: each mean is noisy, their paired difference is not."""
    rng = np.random.default_rng(0)
    session = rng.normal(3.0, 2.0, 2000)  # what the user brings, shared by both policies
    a = session + 0.1 + rng.normal(0, 0.2, 2000)
    b = session + rng.normal(0, 0.2, 2000)
    d, alone = paired_diff(a, b), mean_ci(a)
    assert d["ci_low"] > 0 and d["stderr"] < alone["stderr"] / 5
    # unpaired, the same 0.1 difference would be lost in the noise of the two means
    unpaired_half = 1.96 * math.hypot(mean_ci(a)["stderr"], mean_ci(b)["stderr"])
    assert unpaired_half > 0.1


def test_paired_ratio_is_the_ratio_of_means_with_a_delta_method_interval():
    rng = np.random.default_rng(0)
    den = 1.0 + rng.normal(size=4000)
    num = 0.4 * den + 0.3 * rng.normal(size=4000)
    r = paired_ratio(num, den)
    assert r["ratio"] == pytest.approx(num.mean() / den.mean(), rel=1e-12)
    assert r["denominator_separated"] and r["ci_low"] < 0.4 < r["ci_high"]
    # by hand: the stderr of mean(num - ratio * den), over |mean(den)|
    resid = num - r["ratio"] * den
    assert r["stderr"] == pytest.approx(resid.std(ddof=1) / math.sqrt(4000) / abs(den.mean()), rel=1e-12)
    # over many draws the interval covers the true ratio about 95% of the time
    cover = 0
    for seed in range(200):
        g = np.random.default_rng(seed + 1)
        d = 1.0 + g.normal(size=300)
        c = paired_ratio(0.4 * d + 0.3 * g.normal(size=300), d)
        cover += c["ci_low"] <= 0.4 <= c["ci_high"]
    assert 0.9 <= cover / 200 <= 0.99


def test_paired_ratio_is_not_identified_when_the_denominator_may_be_zero():
    rng = np.random.default_rng(1)
    r = paired_ratio(rng.normal(size=50), rng.normal(size=50))
    assert not r["denominator_separated"] and math.isnan(r["ratio"]) and math.isnan(r["ci_low"])
    with pytest.raises(ValueError, match="pair up"):
        paired_ratio([1.0, 2.0], [1.0])
