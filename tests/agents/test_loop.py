"""The feedback loop: session bookkeeping, slate diversity, deterministic evaluation, the per-step hook."""

import pytest
import torch

from recengine.agents.baselines import RandomPolicy
from recengine.agents.config import LoopConfig
from recengine.agents.loop import SessionTracker, evaluate, slate_diversity, train
from recengine.env import SimConfig, VecRecSim, synthetic_user_model


def tiny_sim(**cfg):
    config = SimConfig(**{"slate_size": 4, "history_len": 8, "max_steps": 15, **cfg})
    return synthetic_user_model(num_users=60, num_items=30, num_genres=4, dim=4, history_len=8, config=config, seed=3)


def test_session_tracker_reports_finished_sessions_only():
    t = SessionTracker(3)
    t.add(torch.tensor([1.0, 0.0, 2.0]), torch.tensor([False, True, False]))
    t.add(torch.tensor([1.0, 1.0, 0.0]), torch.tensor([True, False, True]))
    assert t.pop_mean() == pytest.approx((0.0 + 2.0 + 2.0) / 3)
    assert t.pop_mean() != t.pop_mean()  # nothing finished since: nan


@pytest.mark.parametrize(
    "slate, want",
    [
        ([[0, 1]], 1.0),  # orthogonal items: 1 - cos = 1
        ([[0, 2]], 0.0),
    ],
)  # identical item vectors
def test_slate_diversity(slate, want):
    vecs = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    assert slate_diversity(torch.tensor(slate), vecs) == pytest.approx(want)


def test_evaluate_is_deterministic():
    sim = tiny_sim()
    env = VecRecSim(sim, 32)
    vecs = torch.as_tensor(sim.item_factors, dtype=torch.float32)  # without them diversity is nan (never equal)
    a = evaluate(RandomPolicy(sim.num_items, 4, seed=1), env, seed=5, item_vectors=vecs)
    b = evaluate(RandomPolicy(sim.num_items, 4, seed=1), env, seed=5, item_vectors=vecs)
    assert a == b


def test_evaluate_figures_are_consistent():
    sim = tiny_sim()
    vecs = torch.as_tensor(sim.item_factors, dtype=torch.float32)
    a = evaluate(RandomPolicy(sim.num_items, 4, seed=1), VecRecSim(sim, 32), seed=5, item_vectors=vecs)
    assert a["ctr"] == pytest.approx(a["avg_return"] / a["avg_session_length"])
    assert 0 < a["coverage"] <= 1 and a["sessions"] == 32 and 0 < a["diversity"] < 2
    # one return per session, in slot order; they average to avg_return
    assert len(a["session_returns"]) == 32 and all(r >= 0 for r in a["session_returns"])
    assert sum(a["session_returns"]) / 32 == pytest.approx(a["avg_return"])


def test_on_step_sees_every_evaluation_step():
    sim = tiny_sim()
    steps = []
    plain = evaluate(RandomPolicy(sim.num_items, 4, seed=1), VecRecSim(sim, 16), seed=5)
    hooked = evaluate(RandomPolicy(sim.num_items, 4, seed=1), VecRecSim(sim, 16), seed=5, on_step=steps.append)
    assert hooked["session_returns"] == plain["session_returns"]  # the hook only watches
    assert len(steps) >= 1 and all(s.slates.shape == (16, 4) for s in steps)
    # clicks seen by the hook in the slots' first sessions add up to the returns
    alive = torch.ones(16, dtype=torch.bool)
    total = torch.zeros(16)
    for s in steps:
        total += s.rewards * alive
        alive &= ~s.done
    assert total.double().tolist() == pytest.approx(plain["session_returns"])


def test_on_step_sees_every_training_step():
    sim = tiny_sim()
    steps = []
    cfg = LoopConfig(num_envs=8, total_steps=5, slate_size=4, eval_every=0, progress=False)
    train(RandomPolicy(sim.num_items, 4, seed=1), VecRecSim(sim, 8), cfg, on_step=steps.append)
    assert len(steps) == 5 and all(s.slates.shape == (8, 4) for s in steps)


def test_train_leaves_the_global_rng_state_as_it_was():
    sim = tiny_sim()
    before = torch.random.get_rng_state()
    cfg = LoopConfig(num_envs=8, total_steps=3, slate_size=4, eval_every=2, seed=4, progress=False)
    train(RandomPolicy(sim.num_items, 4, seed=1), VecRecSim(sim, 8), cfg, eval_env=VecRecSim(sim, 8))
    assert torch.equal(torch.random.get_rng_state(), before)


def test_evaluate_leaves_the_global_rng_state_as_it_was():
    sim = tiny_sim()
    before = torch.random.get_rng_state()
    evaluate(RandomPolicy(sim.num_items, 4, seed=1), VecRecSim(sim, 8), seed=5)
    assert torch.equal(torch.random.get_rng_state(), before)
