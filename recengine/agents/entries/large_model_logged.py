"""large-model-logged: the large model alone (no RL), each user's items in the logged training data excluded
besides the visible history. The baseline that says how much of a hybrid's gain is the exclusion alone: the
observation shows the last items only, and hybrid-slateq excludes the whole log."""

from recengine.agents.baselines import SupervisedPolicy
from recengine.agents.entry import AgentEntry, BuiltAgent, CompareSetup
from recengine.agents.hybrid import scorer_from_model
from recengine.agents.logged_items import LoggedItems
from recengine.agents.scorer import leave_one_out_metrics


def build(setup: CompareSetup, seed: int) -> BuiltAgent:
    scorer = scorer_from_model(setup.pretrained)
    policy = SupervisedPolicy(scorer, setup.slate_size, logged=LoggedItems.from_split(setup.split))
    policy.name = "large-model-logged"
    return BuiltAgent(policy, lambda: leave_one_out_metrics(scorer, setup.split))


ENTRY = AgentEntry("large-model-logged", build, needs_pretrained=True)
