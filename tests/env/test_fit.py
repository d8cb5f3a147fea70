"""Fitting the sequence-aware simulator: no leakage, the calibration, the fit report."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from recengine.data import histories_of, leave_one_out, make_synthetic
from recengine.env import SequentialVecSim
from recengine.env.fit import _mean_top_slate_ctr, fit_simulator, split_for_users
from recengine.env.sequential_sim import calibrate_no_click
from recengine.train import SASRecConfig
from tests.env.conftest import make_tiny_sim

TINY = SASRecConfig(dim=16, num_layers=1, num_heads=1, max_len=10, max_epochs=2, max_seconds=1e9, seed=1)


def held_out_positions(data) -> np.ndarray:
    """Indices (into data.item) of every user's validation and test events (the last two by time)."""
    order = np.lexsort((data.timestamp, data.user))  # as build_histories orders them
    users = data.user[order]
    last = np.flatnonzero(np.append(users[1:] != users[:-1], True))
    counts = np.bincount(data.user, minlength=data.num_users)
    evaluated = counts[users[last]] >= 3
    return np.concatenate([order[last[evaluated]], order[last[evaluated] - 1]])


@pytest.fixture(scope="module")
def data():
    return make_synthetic(num_users=40, num_items=30, min_len=4, max_len=12, seed=3)


@pytest.fixture(scope="module")
def fitted(data):
    return fit_simulator(data, response_config=TINY)


def test_no_valid_or_test_item_reaches_the_fit(data, fitted):
    pos = held_out_positions(data)
    other = data.item.copy()
    other[pos] = (other[pos] + 7) % data.num_items  # every held-out item replaced by another id
    changed = dataclasses.replace(data, item=other)
    refit = fit_simulator(changed, response_config=TINY)
    a, b = fitted.response.encoder.state_dict(), refit.response.encoder.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(fitted.response.item_bias, refit.response.item_bias)
    np.testing.assert_array_equal(fitted.train_items, refit.train_items)
    np.testing.assert_array_equal(fitted.train_offsets, refit.train_offsets)
    assert fitted.session_model == refit.session_model
    assert fitted.no_click_offset == refit.no_click_offset
    assert torch.equal(fitted.start_states()[0], refit.start_states()[0])
    assert fitted.fit_report["sessions"] == refit.fit_report["sessions"]


def test_consumed_items_and_start_histories_are_the_train_prefixes(data, fitted):
    split = leave_one_out(histories_of(data))
    h = split.histories
    consumed = fitted.consumed_matrix()
    starts = fitted.start_histories(50)
    for u in range(data.num_users):
        train = h.items[h.offsets[u] : split.train_end[u]]
        assert set(np.flatnonzero(consumed[u].numpy()).tolist()) == set(train.tolist())
        assert starts[u][starts[u] >= 0].tolist() == train[-50:].tolist()
        for target in (split.valid_target[u], split.test_target[u]):
            if target >= 0 and target not in train:
                assert not consumed[u, target]


def test_the_no_click_offset_gives_the_requested_best_slate_click_rate(fitted):
    assert _mean_top_slate_ctr(fitted) == pytest.approx(0.5, abs=1e-6)
    c = calibrate_no_click(fitted, 0.2)
    assert c > fitted.no_click_offset
    assert _mean_top_slate_ctr(dataclasses.replace(fitted, no_click_offset=c)) == pytest.approx(0.2, abs=1e-6)


def test_halving_the_popularity_weight_keeps_the_weights_and_recalibrates(fitted):
    half = fitted.with_popularity_weight(0.5)
    assert half.response.popularity_weight == 0.5 and fitted.response.popularity_weight == 1.0
    assert half.response.encoder is fitted.response.encoder
    assert _mean_top_slate_ctr(half) == pytest.approx(0.5, abs=1e-6)
    assert half.fit_report["calibration"]["no_click_offset"] == half.no_click_offset
    assert fitted.fit_report["calibration"]["no_click_offset"] == fitted.no_click_offset
    u = np.arange(5)
    slates = np.tile(np.arange(3), (5, 1))
    assert not np.allclose(half.choice_probabilities(u, slates), fitted.choice_probabilities(u, slates))


def test_the_fit_report_holds_the_session_fit_and_the_training_summary(fitted):
    report = fitted.fit_report
    assert report["sessions"]["parameters"]["num_sessions"] == report["sessions"]["num_sessions"] > 0
    assert {"bins", "ks_distance", "observed_mean", "fitted_mean"} <= set(report["sessions"]["fit"])
    assert report["response_model"]["seed"] == TINY.seed
    assert report["calibration"]["no_click_offset"] == fitted.no_click_offset


def test_fitting_leaves_the_global_random_state_alone(data):
    before = torch.get_rng_state()
    fit_simulator(data, response_config=TINY)
    assert torch.equal(before, torch.get_rng_state())


def test_tiny_sim_history_longer_than_the_window_is_cut():
    sim = make_tiny_sim(max_len=4)
    assert sim.start_histories(3)[0].tolist() == sim.train_items[4:7].tolist()


def test_a_fit_on_half_the_users_reads_only_their_events(data):
    half = np.arange(0, data.num_users, 2)
    fitted_half = fit_simulator(data, response_config=TINY, users=half)
    other = data.item.copy()
    rows = np.flatnonzero(data.user % 2 == 1)  # every event of the other half, train ones too
    other[rows] = (other[rows] + 11) % data.num_items
    refit = fit_simulator(dataclasses.replace(data, item=other), response_config=TINY, users=half)
    a, b = fitted_half.response.encoder.state_dict(), refit.response.encoder.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(fitted_half.response.item_bias, refit.response.item_bias)
    assert fitted_half.session_model == refit.session_model
    assert fitted_half.no_click_offset == refit.no_click_offset


def test_a_fit_on_half_the_users_simulates_those_users(data):
    half = np.arange(1, data.num_users, 2)
    sim = fit_simulator(data, response_config=TINY, users=half)
    np.testing.assert_array_equal(sim.population, half)
    assert sim.fit_report["users"] == {"fitted_on": "subset", "count": half.size}
    obs, _ = SequentialVecSim(sim, 64).reset(seed=0)
    assert np.isin(obs["user_id"], half).all()
    assert np.isin(SequentialVecSim(sim.with_popularity_weight(0.5), 64).reset(seed=0)[0]["user_id"], half).all()


@pytest.mark.parametrize(
    "users, error",
    [
        (np.array([], np.int64), ValueError),
        (np.array([0.5]), ValueError),
        (np.array([[1, 2]]), ValueError),
        (np.array([-1, 2]), IndexError),
        (np.array([3, 40]), IndexError),
        (np.array([2, 2]), ValueError),
    ],
)
def test_split_for_users_rejects_bad_users(data, users, error):
    with pytest.raises(error, match="users"):
        split_for_users(leave_one_out(histories_of(data)), users)


def test_split_for_users_keeps_only_their_prefixes_and_targets(data):
    split = leave_one_out(histories_of(data))
    part = split_for_users(split, np.array([0, 5]))
    starts = split.histories.offsets[:-1]
    assert (part.train_end - starts)[[0, 5]].tolist() == (split.train_end - starts)[[0, 5]].tolist()
    assert np.all(np.delete(part.train_end - starts, [0, 5]) == 0)
    assert set(part.eval_users.tolist()) <= {0, 5}
