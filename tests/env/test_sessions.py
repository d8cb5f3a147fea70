"""Sessions by inactivity gap, the leaving model's fit, and the returning model."""

from __future__ import annotations

import numpy as np
import pytest

from recengine.env.sessions import SessionModel, fit_return_model, fit_session_model, session_fit_table, split_sessions


def test_split_sessions_cuts_at_the_gap():
    # user 0: 0, 10, 100 | 5000, 5001 ; user 1: 7 ; user 2: nothing ; user 3: 0 | 4000 (train end drops 9000)
    ts = np.array([0, 10, 100, 5000, 5001, 7, 0, 4000, 9000])
    offsets = np.array([0, 5, 6, 6, 9])
    ends = np.array([5, 6, 6, 8])
    lengths, owners, starts, stops = split_sessions(offsets, ts, ends, gap_seconds=1800)
    assert lengths.tolist() == [3, 2, 1, 1, 1]
    assert owners.tolist() == [0, 0, 1, 3, 3]
    assert starts.tolist() == [0, 5000, 7, 0, 4000]
    assert stops.tolist() == [100, 5001, 7, 0, 4000]


def test_split_sessions_uses_every_event_by_default():
    lengths, *_ = split_sessions(np.array([0, 3]), np.array([0, 1, 99999]), gap_seconds=60)
    assert lengths.tolist() == [2, 1]


@pytest.mark.parametrize(
    "offsets, ts, ends, gap, match",
    [
        (np.array([0, 2]), np.array([5, 1]), None, 60, "time order"),
        (np.array([0, 2]), np.array([1, 5]), np.array([3]), 60, "ends"),
        (np.array([0, 2]), np.array([1, 5]), None, 0, "gap_seconds"),
    ],
)
def test_split_sessions_rejects_bad_input(offsets, ts, ends, gap, match):
    with pytest.raises(ValueError, match=match):
        split_sessions(offsets, ts, ends, gap_seconds=gap)


def synthetic_timestamps(model: SessionModel, num_users: int, sessions_per_user: int, seed: int):
    """Event timestamps of users whose sessions have lengths drawn from `model`: events 60 s apart within a
    session, sessions 1-10 days apart."""
    rng = np.random.default_rng(seed)
    n = num_users * sessions_per_user
    short = rng.random(n) < model.weight_short
    lengths = np.where(short, rng.geometric(model.p_short, n), rng.geometric(model.p_long, n))
    stamps, offsets, t = [], [0], 0
    for u in range(num_users):
        for s in range(sessions_per_user):
            length = lengths[u * sessions_per_user + s]
            stamps.append(t + 60 * np.arange(length))
            t = stamps[-1][-1] + int(rng.integers(86400, 10 * 86400))
        offsets.append(sum(len(x) for x in stamps))
    return np.array(offsets), np.concatenate(stamps), lengths


def test_fit_recovers_known_parameters_from_synthetic_timestamps():
    truth = SessionModel(0.4, 0.5, 0.03)
    offsets, ts, drawn = synthetic_timestamps(truth, 400, 20, seed=0)
    lengths, *_ = split_sessions(offsets, ts, gap_seconds=1800)
    np.testing.assert_array_equal(lengths, drawn)  # the gap recovers the sessions exactly
    fit = fit_session_model(lengths)
    assert fit.weight_short == pytest.approx(0.4, abs=0.03)
    assert fit.p_short == pytest.approx(0.5, abs=0.04)
    assert fit.p_long == pytest.approx(0.03, abs=0.003)
    table = session_fit_table(lengths, fit)
    assert table["ks_distance"] < 0.02
    assert sum(b["observed"] for b in table["bins"]) == pytest.approx(1.0)
    assert sum(b["fitted"] for b in table["bins"]) == pytest.approx(1.0)


def test_hazard_is_the_pmf_over_the_survival():
    m = SessionModel(0.3, 0.6, 0.05)
    h = m.hazard(6)
    assert h[0] == 0.0
    for n in range(1, 7):
        pmf = 0.3 * 0.6 * 0.4 ** (n - 1) + 0.7 * 0.05 * 0.95 ** (n - 1)
        surv = 0.3 * 0.4 ** (n - 1) + 0.7 * 0.95 ** (n - 1)
        assert h[n] == pytest.approx(pmf / surv)
    assert m.mean_length() == pytest.approx(0.3 / 0.6 + 0.7 / 0.05)


def test_a_single_geometric_is_fitted_as_one():
    rng = np.random.default_rng(1)
    fit = fit_session_model(rng.geometric(0.2, 20000))
    assert fit.survival(np.array([5.0])) == pytest.approx(0.8**4, abs=0.01)


@pytest.mark.parametrize("lengths", [[], [0, 1], [1.5, 2]])
def test_fit_rejects_bad_lengths(lengths):
    with pytest.raises(ValueError, match="lengths"):
        fit_session_model(lengths)


def test_return_model_recovers_a_known_slope():
    rng = np.random.default_rng(0)
    n = 3000
    lengths = rng.integers(1, 100, n)
    owners = np.repeat(np.arange(n // 3), 3)
    gaps_hours = np.exp(2.0 - 0.5 * np.log(lengths[:-1]) + 0.1 * rng.normal(size=n - 1))
    starts, stops = np.zeros(n), np.zeros(n)
    for i in range(1, n):
        starts[i] = stops[i - 1] + gaps_hours[i - 1] * 3600
        stops[i] = starts[i] + 60
    fit = fit_return_model(lengths, owners, starts, stops)
    assert fit["slope"] == pytest.approx(-0.5, abs=0.02)
    assert fit["intercept"] == pytest.approx(2.0, abs=0.05)
    assert fit["pairs"] == n - n // 3
