"""REINFORCE: per-item returns by hand; it learns on-policy and from logged data on a tiny simulator."""

import pytest
import torch

from recengine.agents.baselines import RandomPolicy
from recengine.agents.config import ReinforceConfig
from recengine.agents.loop import Step, evaluate, reset_env, step_env
from recengine.agents.reinforce import ReinforceAgent, SessionReturns
from recengine.env import VecRecSim
from tests.agents.tiny import K, run, tiny_scorer


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
    assert sr.count == 2  # user 1's two steps
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


def test_reinforce_learns_on_policy(sim, random_value):
    cfg = ReinforceConfig(lr=1e-2, min_batch=128)
    agent = ReinforceAgent(tiny_scorer(sim), sim.num_items, K, cfg, seed=0)
    out, value = run(agent, sim, 60)
    assert out["updates"] >= 5
    assert value > 1.3 * random_value, f"REINFORCE {value:.3f} vs random {random_value:.3f}"


def collect(policy, sim, steps, gamma):
    """(hist, slate, item_return) logged by `policy` for `steps` vectorised steps."""
    env = VecRecSim(sim, 64)
    obs = reset_env(env, 5)
    returns = SessionReturns(gamma)
    for _ in range(steps):
        step = step_env(env, obs, policy.act(obs, explore=True))
        returns.add(step)
        obs = step.reset_obs
    return returns.pop()


def test_reinforce_learns_from_logged_data(sim, random_value):
    """Off-policy: logs of a uniformly random policy, the behaviour head, clipped weights, top-K correction."""
    hist, slate, item_return = collect(RandomPolicy(sim.num_items, K, seed=3), sim, 60, gamma=0.9)
    cfg = ReinforceConfig(lr=3e-3, batch_size=256, weight_clip=10.0)
    agent = ReinforceAgent(tiny_scorer(sim), sim.num_items, K, cfg, seed=0)
    torch.set_num_threads(1)
    stats = agent.learn_from_logs(hist, slate, item_return, epochs=3)
    assert all(s["mean_weight"] <= 10.0 for s in stats)
    assert stats[-1]["beta_nll"] < stats[0]["beta_nll"]  # the behaviour head learns the logger
    value = evaluate(agent, VecRecSim(sim, 256), seed=77)["avg_return"]
    assert value > 1.3 * random_value, f"off-policy REINFORCE {value:.3f} vs random {random_value:.3f}"


def test_the_kl_anchor_keeps_the_policy_near_where_it_started(sim):
    """With a large KL weight the fine-tuned policy stays close to the scorer it received; without, it drifts."""
    from recengine.agents.anchor import policy_kl

    def drift(kl_weight):
        agent = ReinforceAgent(
            tiny_scorer(sim, seed=2),
            sim.num_items,
            K,
            ReinforceConfig(lr=3e-2, min_batch=64, kl_weight=kl_weight),
            seed=0,
        )
        run(agent, sim, 20)
        start = tiny_scorer(sim, seed=2)
        hist = reset_env(VecRecSim(sim, 64), 3)["history"]
        with torch.no_grad():
            return float(policy_kl(agent.policy, start, torch.as_tensor(hist)))

    free, anchored = drift(0.0), drift(20.0)
    assert anchored < 0.5 * free, (anchored, free)


def test_a_negative_kl_weight_is_refused():
    with pytest.raises(ValueError, match="kl_weight"):
        ReinforceConfig(kl_weight=-0.1)
