"""The feedback loop's bookkeeping, the per-item returns REINFORCE learns from, and the baselines."""
import numpy as np
import pytest
import torch

from recengine.agents.baselines import PopularityPolicy, RandomPolicy
from recengine.agents.loop import SessionTracker, Step, evaluate, slate_diversity
from recengine.agents.policy_base import exclusion_csr, histories
from recengine.agents.reinforce import SessionReturns
from recengine.env import SimConfig, VecRecSim, synthetic_user_model


def tiny_sim(**cfg):
    config = SimConfig(**{"slate_size": 4, "history_len": 8, "max_steps": 15, **cfg})
    return synthetic_user_model(num_users=60, num_items=30, num_genres=4, dim=4, history_len=8, config=config, seed=3)


def make_step(B, k, clicks, rewards, done, hist=None):
    hist = torch.full((B, 3), -1, dtype=torch.int64) if hist is None else hist
    slates = torch.arange(B * k).reshape(B, k)
    done = torch.tensor(done)
    return Step(hist, slates, torch.tensor(clicks), torch.tensor(rewards, dtype=torch.float32), hist, done, done, hist)


def test_session_returns_hand_computed():
    gamma = 0.5
    sr = SessionReturns(gamma)
    # user 0: clicks at t=0 (pos 1) and t=2 (pos 0), session ends at t=2
    # user 1: no click at t=0, ends at t=1 after a click (pos 2); new session at t=2 (click pos 3), still open
    sr.add(make_step(2, 4, [1, -1], [1.0, 0.0], [False, False]))
    sr.add(make_step(2, 4, [-1, 2], [0.0, 1.0], [False, True]))
    assert sr.count == 2                          # user 1's two steps
    sr.add(make_step(2, 4, [0, 3], [1.0, 1.0], [True, False]))
    hist, slate, item_return = sr.pop()
    assert sr.count == 0 and hist.shape == (5, 3)
    got = sorted(tuple(r.tolist()) for r in item_return)
    # user 1: t=1 G=1 (pos 2); t=0 G=0 + 0.5*1 = 0.5 but no click -> all zeros
    # user 0: t=2 G=1 (pos 0); t=1 G=0.5, no click -> zeros; t=0 G=1 + 0.5*0.5 = 1.25 at pos 1
    want = sorted([(0, 0, 1.0, 0), (0, 0, 0, 0), (1.0, 0, 0, 0), (0, 0, 0, 0), (0, 1.25, 0, 0)])
    assert got == [tuple(map(float, w)) for w in want]
    # user 1's new session (from t=2) is still open; it ends at t=3 without a click: G_3 = 0, G_2 = 1 (pos 3);
    # user 0's new session (from t=3) stays open
    sr.add(make_step(2, 4, [-1, -1], [0.0, 0.0], [False, True]))
    _, _, item_return = sr.pop()
    assert item_return.tolist() == [[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]


def test_session_tracker_and_diversity():
    t = SessionTracker(3)
    t.add(torch.tensor([1.0, 0.0, 2.0]), torch.tensor([False, True, False]))
    t.add(torch.tensor([1.0, 1.0, 0.0]), torch.tensor([True, False, True]))
    assert sorted(t.pop_mean() for _ in range(1)) == [pytest.approx((0.0 + 2.0 + 2.0) / 3)]
    vecs = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    # slate {0, 1}: 1 - cos = 1; slate {0, 2}: identical items, 0
    assert slate_diversity(torch.tensor([[0, 1]]), vecs) == pytest.approx(1.0)
    assert slate_diversity(torch.tensor([[0, 2]]), vecs) == pytest.approx(0.0)


def test_exclusion_csr_any_padding():
    hist = torch.tensor([[-1, -1, 4, 2], [7, -1, -1, -1], [-1, -1, -1, -1]])
    offsets, ids = exclusion_csr(hist)
    assert offsets.tolist() == [0, 2, 3, 3] and ids.tolist() == [4, 2, 7]
    assert histories({"history": np.array([[1, -1]])}).dtype == torch.int64


def test_random_and_popularity_respect_history():
    hist = torch.tensor([[0, 1, 2, 3], [-1, -1, 5, 6]])
    rnd = RandomPolicy(10, 4, seed=0).act(hist)
    pop = PopularityPolicy(np.arange(10)[::-1].copy(), 3).act(hist)   # item 0 most popular
    for row, h in zip(rnd.tolist(), hist.tolist()):
        assert len(set(row)) == 4 and not set(row) & set(h)
    assert pop.tolist() == [[4, 5, 6], [0, 1, 2]]


def test_evaluate_is_deterministic_and_consistent():
    sim = tiny_sim()
    env = VecRecSim(sim, 32)
    vecs = torch.as_tensor(sim.item_factors, dtype=torch.float32)
    a = evaluate(RandomPolicy(sim.num_items, 4, seed=1), env, seed=5, item_vectors=vecs)
    b = evaluate(RandomPolicy(sim.num_items, 4, seed=1), env, seed=5, item_vectors=vecs)
    assert a == b
    assert a["ctr"] == pytest.approx(a["avg_return"] / a["avg_session_length"])
    assert 0 < a["coverage"] <= 1 and a["sessions"] == 32 and 0 < a["diversity"] < 2
    # one return per session, in slot order; they average to avg_return
    assert len(a["session_returns"]) == 32 and all(r >= 0 for r in a["session_returns"])
    assert sum(a["session_returns"]) / 32 == pytest.approx(a["avg_return"])
