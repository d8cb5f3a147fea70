"""mf-bpr: BPR matrix factorisation fitted offline on the leave-one-out training prefixes, then its top-k.

It fits its own model from its own generators (no draw from torch's global one), so adding it changes no
other agent's figures.
"""

from recengine.agents.baselines import MatrixFactorizationPolicy
from recengine.agents.entry import AgentEntry, BuiltAgent, CompareSetup
from recengine.agents.mf import BPRConfig, evaluate_bpr, train_bpr


def build(setup: CompareSetup, seed: int) -> BuiltAgent:
    s = setup.settings
    model, _ = train_bpr(setup.split, BPRConfig(epochs=s.bpr_epochs, seed=seed), progress=False)
    policy = MatrixFactorizationPolicy(model.user, model.item, model.bias, setup.slate_size)

    def offline() -> dict[str, float]:
        m = evaluate_bpr(model, setup.split, "test")
        return {"hr@10": m["hr@10"], "ndcg@10": m["ndcg@10"]}

    return BuiltAgent(policy, offline)


ENTRY = AgentEntry("mf-bpr", build)
