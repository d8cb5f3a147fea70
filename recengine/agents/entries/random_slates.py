"""random: k distinct unseen items uniformly at random, the floor every agent must clear."""

from recengine.agents.baselines import RandomPolicy
from recengine.agents.entry import AgentEntry, BuiltAgent, CompareSetup


def build(setup: CompareSetup, seed: int) -> BuiltAgent:
    return BuiltAgent(RandomPolicy(setup.num_items, setup.slate_size, seed=seed))


ENTRY = AgentEntry("random", build)
