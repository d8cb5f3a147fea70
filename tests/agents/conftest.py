"""The tiny simulator the agents' learning tests share, and the random policy's value on it."""

import pytest

from recengine.agents.baselines import RandomPolicy
from recengine.agents.loop import evaluate
from recengine.env import SimConfig, VecRecSim, synthetic_user_model
from tests.agents.tiny import K, L


@pytest.fixture(scope="module")
def sim():
    config = SimConfig(slate_size=K, history_len=L, max_steps=20)
    return synthetic_user_model(num_users=150, num_items=60, num_genres=5, dim=6, history_len=L, config=config, seed=0)


@pytest.fixture(scope="module")
def random_value(sim):
    return evaluate(RandomPolicy(sim.num_items, K, seed=0), VecRecSim(sim, 256), seed=77)["avg_return"]
