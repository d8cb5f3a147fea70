"""large-model: the supervised next-item model alone (no RL), its top-k with the history excluded."""

from recengine.agents.baselines import SupervisedPolicy
from recengine.agents.entry import AgentEntry, BuiltAgent, CompareSetup
from recengine.agents.hybrid import scorer_from_model
from recengine.agents.scorer import leave_one_out_metrics


def build(setup: CompareSetup, seed: int) -> BuiltAgent:
    scorer = scorer_from_model(setup.pretrained)
    return BuiltAgent(SupervisedPolicy(scorer, setup.slate_size), lambda: leave_one_out_metrics(scorer, setup.split))


ENTRY = AgentEntry("large-model", build, needs_pretrained=True)
