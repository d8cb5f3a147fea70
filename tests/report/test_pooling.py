"""Pooling per-seed rows: the figures over seeds, paired differences and curve gains, against hand values."""

import math

import pytest

from recengine.report.pooling import add_paired_differences, combine_seeds


def _row(returns, gain=None):
    return {
        "session_returns": returns,
        "ctr": 0.5,
        "coverage": 0.1,
        "diversity": 0.7,
        "avg_session_length": 4.0,
        "updates_per_s": None,
        "train_seconds": None,
        "hr@10": None,
        "ndcg@10": None,
        "updates": 0,
        "curve": [],
        "curve_gain": gain,
        "wall_seconds": 1.0,
    }


def test_each_seeds_offline_ndcg_is_kept_beside_the_mean():
    rows = [
        {**_row([1.0, 2.0]), "ndcg@10": 0.10, "hr@10": 0.2},
        {**_row([3.0, 4.0]), "ndcg@10": 0.12, "hr@10": 0.2},
    ]
    entry = combine_seeds(rows)
    assert entry["seed_ndcg@10"] == [0.10, 0.12] and entry["ndcg@10"] == pytest.approx(0.11)


def test_combine_seeds_and_paired_differences_hand_values():
    per_seed = {
        "popularity": [_row([1.0, 2.0]), _row([3.0, 4.0])],
        "agent": [
            _row([3.0, 5.0], {"mean": 1.0, "stderr": 0.5, "n": 100}),
            _row([4.0, 6.0], {"mean": 3.0, "stderr": 0.5, "n": 100}),
        ],
    }
    entries = {name: combine_seeds(rows) for name, rows in per_seed.items()}
    add_paired_differences(entries, per_seed)
    agent = entries["agent"]
    # sessions 3, 5, 4, 6: mean 4.5, s = sqrt(5/3), stderr 0.645497
    assert agent["avg_return"] == pytest.approx(4.5) and agent["sessions"] == 4
    assert agent["return_stderr"] == pytest.approx(0.645497, abs=1e-6)
    assert agent["seed_returns"] == [4.0, 5.0] and agent["wall_seconds"] == 2.0
    assert agent["seed_ndcg@10"] is None  # no offline model
    # paired with popularity's 1, 2, 3, 4: differences 2, 3, 1, 2
    d = agent["paired"]["popularity"]
    assert d["diff"] == pytest.approx(2.0) and d["stderr"] == pytest.approx(0.408248, abs=1e-6)
    assert d["ci95"] == pytest.approx([1.199848, 2.800152], abs=1e-6)
    assert "large-model" not in agent["paired"] and entries["popularity"]["paired"] == {}
    # per seed: 4 - 1.5 = 2.5 and 5 - 3.5 = 1.5; s = sqrt(0.5), stderr 0.5, t(1 df) 12.706205
    assert d["seed_diffs"] == [2.5, 1.5] and d["seed_ci95"] == pytest.approx([2 - 6.353102, 2 + 6.353102], abs=1e-5)
    # two seeds' gains of 100 sessions each: mean 2, stderr sqrt(50² + 50²) / 200
    g = agent["curve_gain"]
    assert g["diff"] == pytest.approx(2.0) and g["n"] == 200
    assert g["stderr"] == pytest.approx(math.sqrt(2 * 50.0**2) / 200)
    assert entries["popularity"]["curve_gain"] is None
