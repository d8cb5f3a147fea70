"""SlateQ on top of a scorer: it recovers a known choice model, beats random on the tiny simulator, is
deterministic under a seed, refuses bad settings by name, and starts as the scorer it was given."""

import math

import numpy as np
import pytest
import torch

from recengine.agents.config import EncoderConfig, LoopConfig, SlateQConfig
from recengine.agents.loop import evaluate, reset_env, train
from recengine.agents.scorer import new_scorer
from recengine.agents.slateq import SlateQAgent
from recengine.env import VecRecSim
from tests.agents.tiny import K, L, run, tiny_scorer

N_ITEMS = 12


class LogitUsers:
    """B identical users who choose from a slate by a fixed conditional logit: item j weighs softmax(u)_j, no click
    weighs e^c; the history stays empty and each step ends the session with probability 0.2. The best slate is
    the top-K items of u, whatever the state."""

    def __init__(self, num_envs: int, utilities, no_click: float):
        self.num_envs, self.num_items = num_envs, len(utilities)
        self.pi = np.exp(utilities) / np.exp(utilities).sum()
        self.no_click = math.exp(no_click)
        self.rng = np.random.default_rng(0)

    def _obs(self):
        return {"history": np.full((self.num_envs, L), -1, np.int64), "user_id": np.zeros(self.num_envs, np.int64)}

    def reset(self, seed=None):
        self.rng = np.random.default_rng(seed)
        return self._obs(), {}

    def step(self, slates):
        w = self.pi[slates]  # (B, K)
        p = np.concatenate([w, np.full((self.num_envs, 1), self.no_click)], 1)
        p /= p.sum(1, keepdims=True)
        u = self.rng.random((self.num_envs, 1))
        pos = (p.cumsum(1) < u).sum(1)
        clicked = pos < slates.shape[1]
        done = self.rng.random(self.num_envs) < 0.2
        info = {"click_position": np.where(clicked, pos, -1), "final_obs": self._obs()}
        return self._obs(), clicked.astype(np.float32), done, np.zeros_like(done), info


UTILITIES = np.array([0.0, 2.5, -1.0, 1.0, 3.0, 0.5, -0.5, 2.0, 1.5, 0.2, -2.0, 0.8])
FAST = dict(lr=3e-3, no_click_lr=3e-2, learning_starts=64, batch_size=128, updates_per_step=2, kl_weight=0.0)


def test_it_learns_the_choice_model_and_the_best_slate():
    """Starting from a random scorer, the greedy slate becomes the K items users click most, and the learnt
    no-click logit the true one (π over the catalogue, as the users weigh it)."""
    torch.set_num_threads(1)
    env = LogitUsers(64, UTILITIES, no_click=math.log(0.3))
    scorer = new_scorer(N_ITEMS, EncoderConfig(dim=16, max_len=L, num_layers=1, num_heads=1), seed=3)
    agent = SlateQAgent(scorer, N_ITEMS, K, L, SlateQConfig(gamma=0.0, temperature_start=2.0, **FAST), 120, seed=0)
    train(agent, env, LoopConfig(num_envs=64, total_steps=120, slate_size=K, eval_every=0, seed=1, progress=False))
    obs = reset_env(env, 5)
    best = set(np.argsort(-UTILITIES)[:K].tolist())
    assert set(agent.act(obs)[0].tolist()) == best
    assert abs(float(agent.no_click.detach()) - math.log(0.3)) < 0.35


@pytest.mark.parametrize("gamma", [0.0, 0.5])
def test_it_beats_random_on_the_tiny_simulator(sim, random_value, gamma):
    cfg = SlateQConfig(gamma=gamma, learning_starts=128, **{k: v for k, v in FAST.items() if k != "learning_starts"})
    agent = SlateQAgent(tiny_scorer(sim), sim.num_items, K, L, cfg, 60, seed=0)
    out, value = run(agent, sim, 60)
    assert out["updates"] > 50
    assert value > 1.5 * random_value, f"SlateQ {value:.3f} vs random {random_value:.3f}"


def test_it_starts_as_the_scorer_it_was_given(sim):
    scorer = tiny_scorer(sim, seed=2)
    agent = SlateQAgent(scorer, sim.num_items, K, L, SlateQConfig(), 10)
    obs = reset_env(VecRecSim(sim, 8), 3)
    from recengine.agents.baselines import SupervisedPolicy

    assert torch.equal(agent.act(obs), SupervisedPolicy(tiny_scorer(sim, seed=2), K).act(obs))


def test_deterministic_under_a_seed(sim):
    def trained(seed):
        torch.set_num_threads(1)
        agent = SlateQAgent(tiny_scorer(sim), sim.num_items, K, L, SlateQConfig(**FAST), 12, seed=seed)
        cfg = LoopConfig(num_envs=32, total_steps=12, slate_size=K, eval_every=0, seed=seed, progress=False)
        train(agent, VecRecSim(sim, 32), cfg)
        return agent, evaluate(agent, VecRecSim(sim, 64), seed=9)["session_returns"]

    (a, ra), (b, rb) = trained(4), trained(4)
    assert a.num_updates() > 0 and ra == rb
    for (name, pa), pb in zip(a.scorer.state_dict().items(), b.scorer.state_dict().values()):
        assert torch.equal(pa, pb), name
    assert float(a.no_click.detach()) == float(b.no_click.detach())


@pytest.mark.parametrize(
    "key, value",
    [("lr", 0.0), ("kl_weight", -1.0), ("gamma", 1.0), ("candidates", 0), ("tau", 0.0), ("no_click_init", math.inf)],
)
def test_bad_settings_are_refused_by_name(key, value):
    with pytest.raises(ValueError, match=key):
        SlateQConfig(**{key: value})


def test_a_slate_larger_than_the_catalogue_is_refused(sim):
    with pytest.raises(ValueError, match="slate_size"):
        SlateQAgent(tiny_scorer(sim), sim.num_items, sim.num_items + 1, L, SlateQConfig(), 10)
