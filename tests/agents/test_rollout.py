"""The one rollout loop: it stops where told, calls the learner and the hooks in order, hands over the generator."""

import numpy as np
import pytest
import torch

from recengine.agents.baselines import RandomPolicy
from recengine.agents.policy_base import Policy
from recengine.agents.rollout import Step, rollout
from recengine.env import SimConfig, VecRecSim, synthetic_user_model


@pytest.fixture(scope="module")
def sim():
    config = SimConfig(slate_size=3, history_len=6, max_steps=10)
    return synthetic_user_model(num_users=40, num_items=20, num_genres=3, dim=4, history_len=6, config=config, seed=2)


class Recorder(Policy):
    """A fixed-slate learner that writes down what the loop asks of it."""

    learns = True

    def __init__(self):
        self.calls: list[str] = []
        self.explore: list[bool] = []
        self.rngs: list[object] = []

    def act(self, obs, explore=False, rng=None):
        self.calls.append("act")
        self.explore.append(explore)
        self.rngs.append(rng)
        return torch.arange(3).repeat(len(obs["user_id"]), 1)

    def observe(self, step):
        self.calls.append("observe")

    def update(self):
        self.calls.append("update")
        return {"loss": 1.5}


def test_rollout_takes_max_steps_steps(sim):
    seen: list[Step] = []
    stats = rollout(RandomPolicy(sim.num_items, 3, seed=0), VecRecSim(sim, 8), seed=1, max_steps=7, hooks=[seen.append])
    assert stats.steps == 7 and len(seen) == 7
    assert all(s.slates.shape == (8, 3) for s in seen)


def test_rollout_stops_when_until_is_true(sim):
    seen: list[Step] = []
    policy = RandomPolicy(sim.num_items, 3, seed=0)
    stats = rollout(policy, VecRecSim(sim, 8), seed=1, until=lambda: len(seen) == 3, hooks=[seen.append])
    assert stats.steps == 3


def test_rollout_learns_before_the_hooks_see_the_step(sim):
    policy = Recorder()
    order: list[str] = []

    def hook(step: Step) -> None:
        order.extend(policy.calls + ["hook"])
        policy.calls.clear()
        assert step.update_stats == {"loss": 1.5}

    rollout(policy, VecRecSim(sim, 4), seed=0, explore=True, learn=True, max_steps=2, hooks=[hook])
    assert order == ["act", "observe", "update", "hook"] * 2
    assert policy.explore == [True, True]


def test_rollout_without_learn_never_updates(sim):
    policy = Recorder()
    rollout(policy, VecRecSim(sim, 4), seed=0, max_steps=3)
    assert policy.calls == ["act"] * 3


def test_rollout_hands_the_generator_to_act(sim):
    policy = Recorder()
    rng = np.random.default_rng(0)
    rollout(policy, VecRecSim(sim, 4), seed=0, rng=rng, max_steps=2)
    assert policy.rngs == [rng, rng]


def test_rollout_hooks_run_in_order(sim):
    order: list[str] = []
    hooks = [lambda s: order.append("first"), lambda s: order.append("second")]
    rollout(RandomPolicy(sim.num_items, 3, seed=0), VecRecSim(sim, 4), seed=0, max_steps=2, hooks=hooks)
    assert order == ["first", "second"] * 2


@pytest.mark.parametrize(
    "kwargs, match",
    [({}, "max_steps or until"), ({"max_steps": -1}, "max_steps")],
)
def test_rollout_rejects_a_loop_without_end(sim, kwargs, match):
    with pytest.raises(ValueError, match=match):
        rollout(RandomPolicy(sim.num_items, 3, seed=0), VecRecSim(sim, 4), seed=0, **kwargs)
