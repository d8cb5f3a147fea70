"""reinforce: REINFORCE from scratch, a softmax policy over a fresh encoder of the large model's architecture."""

from recengine.agents.entry import AgentEntry, BuiltAgent, CompareSetup
from recengine.agents.reinforce import ReinforceAgent
from recengine.agents.scorer import fresh_scorer, leave_one_out_metrics


def build(setup: CompareSetup, seed: int) -> BuiltAgent:
    scorer = fresh_scorer(setup.data, setup.sasrec, seed=seed)
    agent = ReinforceAgent(scorer, setup.num_items, setup.slate_size, setup.settings.reinforce, seed=seed)
    return BuiltAgent(agent, lambda: leave_one_out_metrics(scorer, setup.split))


ENTRY = AgentEntry("reinforce", build)
