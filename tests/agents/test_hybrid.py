"""The hybrid starts as the large model alone and fine-tunes a copy, never the large model itself."""

import copy

import torch

from recengine.agents.baselines import SupervisedPolicy
from recengine.agents.hybrid import make_hybrid, scorer_from_model
from recengine.agents.loop import reset_env
from recengine.env import VecRecSim
from tests.agents.tiny import K, L, run, tiny_scorer


def test_hybrid_starts_as_the_large_model_and_leaves_it_untouched(sim):
    from recengine.nn import SequenceRecommender

    torch.manual_seed(0)
    encoder = tiny_scorer(sim).encoder
    head = tiny_scorer(sim).head
    model = SequenceRecommender(encoder, head, use_users=False)
    before = copy.deepcopy(model.state_dict())
    alone = SupervisedPolicy(scorer_from_model(model), K)
    obs = reset_env(VecRecSim(sim, 16), 3)
    for kind in ("reinforce", "dqn"):
        agent = make_hybrid(model, kind, num_items=sim.num_items, slate_size=K, history_len=L, total_steps=5)
        assert agent.name == f"hybrid-{kind}"
        assert torch.equal(agent.act(obs), alone.act(obs))
        run(agent, sim, 5)
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name
