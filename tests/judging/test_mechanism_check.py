"""The simulator's mechanisms against real sessions: sittings split like the fit splits them, genre-sharing
rates, simulated sessions recorded from the evaluation loop, and the evolving-state likelihood check."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recengine.agents.loop import evaluate
from recengine.data.sequences import Histories, LeaveOneOut
from recengine.env.sequential_sim import SequentialVecSim
from recengine.judging import mechanism_check as mc
from recengine.judging.oracle_myopic import MyopicOracle
from recengine.padding import PAD_ID
from tests.env.conftest import make_tiny_sim

HOUR = 3600


def _split() -> LeaveOneOut:
    """User 0: items 0,1,2 in one sitting, then 3,4 a day later (+ valid 5, test 6); user 1: 7,8 together, 9 an
    hour later (+ valid 10, test 11)."""
    day = 24 * HOUR
    items = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
    stamps = np.array([0, 60, 120, day, day + 60, day + 120, day + 180, 0, 60, 60 + HOUR, 2 * day, 3 * day])
    offsets = np.array([0, 7, 12])
    h = Histories(offsets, items, stamps, 14)
    return LeaveOneOut(h, np.array([5, 10]), np.array([5, 10]), np.array([6, 11]))


GENRES = np.zeros((14, 2))
GENRES[[0, 1, 3, 7, 9], 0] = 1  # genre 0
GENRES[[1, 2, 4, 8, 10, 11, 12, 13, 5, 6], 1] = 1  # genre 1 (item 1 has both)


def test_real_sittings_are_split_at_thirty_minutes_of_train_events():
    items, index, session, first = mc.real_sessions(_split())
    assert items.tolist() == [0, 1, 2, 3, 4, 7, 8, 9]  # train events only
    assert session.tolist() == [0, 0, 0, 1, 1, 2, 2, 3]
    assert items[first].tolist() == [0, 0, 0, 3, 3, 7, 7, 9]
    assert index.tolist() == [0, 1, 2, 3, 4, 7, 8, 9]


def test_real_session_stats_by_hand():
    s = mc.real_session_stats(_split(), GENRES)
    assert s["sessions"] == 4 and s["mean_length"] == pytest.approx(8 / 4) and s["share_of_length_1"] == 0.25
    # consecutive pairs in a sitting: (0,1) yes, (1,2) yes, (3,4) no, (7,8) no
    assert s["pairs"] == 4 and s["consecutive_same_genre"] == pytest.approx(0.5)


def test_the_recorder_keeps_each_slots_first_session_clicks():
    sim = make_tiny_sim(num_items=20)
    env = SequentialVecSim(sim, 32)
    rec = mc.ClickRecorder(32)
    returns = evaluate(MyopicOracle(env), env, seed=3, on_step=rec)["session_returns"]
    assert [len(s) for s in rec.sessions] == [int(r) for r in returns]
    assert (rec.slates >= 1).all()
    stats = mc.simulated_session_stats(rec, sim.item_genres)
    assert stats["share_with_a_click"] == pytest.approx(np.mean(np.asarray(returns) > 0))
    assert stats["slates_per_session"] == pytest.approx(rec.slates.mean())


def test_the_evolving_state_check_scores_real_items_under_both_states():
    sim = make_tiny_sim(num_items=14, max_len=6)
    out = mc.evolving_state_check(sim, _split(), max_items=10)
    assert out["items"] == 4  # every train item but a sitting's first
    # by hand: (item, everything rated before it, what was rated before its sitting)
    cases = [(1, [0], []), (2, [0, 1], []), (4, [0, 1, 2, 3], [0, 1, 2]), (8, [7], [])]
    r = sim.response

    def logp(item, before, window):
        consumed = torch.zeros(1, 14, dtype=torch.bool)
        consumed[0, before] = True
        h = torch.tensor([[PAD_ID] * (6 - len(window)) + window])
        return float(r.next_item_log_probs(r.states(h), consumed)[0, item])

    gains = [logp(i, before, before) - logp(i, before, start) for i, before, start in cases]
    assert out["gain"] == pytest.approx(np.mean(gains), rel=1e-5)
    assert out["gain_ci95"][0] <= out["gain"] <= out["gain_ci95"][1]
