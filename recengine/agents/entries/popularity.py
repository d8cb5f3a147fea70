"""popularity: the k most-interacted-with unseen items, the same for every user."""

from recengine.agents.baselines import PopularityPolicy
from recengine.agents.entry import AgentEntry, BuiltAgent, CompareSetup


def build(setup: CompareSetup, seed: int) -> BuiltAgent:
    return BuiltAgent(PopularityPolicy(setup.item_counts, setup.slate_size))


ENTRY = AgentEntry("popularity", build)
