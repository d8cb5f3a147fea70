"""Sizes and helpers of the agents' learning tests: a tiny scorer, a short training run."""

import torch

from recengine.agents.config import EncoderConfig, LoopConfig
from recengine.agents.loop import evaluate, train
from recengine.agents.scorer import new_scorer
from recengine.env import VecRecSim

K, L = 4, 8
"""slate size, history length"""


def tiny_scorer(sim, seed=0):
    return new_scorer(sim.num_items, EncoderConfig(dim=16, max_len=L, num_layers=1, num_heads=1), seed=seed)


def run(agent, sim, steps):
    torch.set_num_threads(1)
    cfg = LoopConfig(num_envs=64, total_steps=steps, slate_size=K, eval_every=0, seed=1, progress=False)
    out = train(agent, VecRecSim(sim, 64), cfg)
    return out, evaluate(agent, VecRecSim(sim, 256), seed=77)["avg_return"]
