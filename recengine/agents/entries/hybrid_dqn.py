"""hybrid-dqn: the pre-trained large model fine-tuned by DQN in the simulator."""

from recengine.agents.entry import AgentEntry, BuiltAgent, CompareSetup
from recengine.agents.hybrid import make_hybrid
from recengine.agents.scorer import leave_one_out_metrics


def build(setup: CompareSetup, seed: int) -> BuiltAgent:
    s = setup.settings
    agent = make_hybrid(
        setup.pretrained,
        "dqn",
        num_items=setup.num_items,
        slate_size=setup.slate_size,
        history_len=s.history_len,
        dqn=s.hybrid_dqn,
        total_steps=s.rl_steps.get("hybrid-dqn", 0),
        seed=seed,
    )
    return BuiltAgent(agent, lambda: leave_one_out_metrics(agent.scorer, setup.split))


ENTRY = AgentEntry("hybrid-dqn", build, needs_pretrained=True)
