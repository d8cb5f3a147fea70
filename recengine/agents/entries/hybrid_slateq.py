"""hybrid-slateq: the pre-trained large model fine-tuned by SlateQ in the simulator: a slate choice model learnt
from the observed clicks, item values learnt by TD, a KL penalty to the large model (recengine.agents.slateq)."""

from recengine.agents.entry import AgentEntry, BuiltAgent, CompareSetup
from recengine.agents.hybrid import scorer_from_model
from recengine.agents.logged_items import LoggedItems
from recengine.agents.scorer import leave_one_out_metrics
from recengine.agents.slateq import SlateQAgent


def build(setup: CompareSetup, seed: int) -> BuiltAgent:
    s = setup.settings
    agent = SlateQAgent(
        scorer_from_model(setup.pretrained),
        setup.num_items,
        setup.slate_size,
        s.history_len,
        s.hybrid_slateq,
        s.rl_steps.get("hybrid-slateq", 0),
        logged=LoggedItems.from_split(setup.split),
        seed=seed,
    )
    agent.name = "hybrid-slateq"
    return BuiltAgent(agent, lambda: leave_one_out_metrics(agent.scorer, setup.split))


ENTRY = AgentEntry("hybrid-slateq", build, needs_pretrained=True)
