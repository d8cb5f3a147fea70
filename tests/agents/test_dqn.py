"""DQN learns on a tiny simulator, its target network copies, its greedy slate is the scorer's top-k."""

import torch

from recengine.agents.config import DQNConfig
from recengine.agents.dqn import DQNAgent
from recengine.agents.loop import reset_env
from recengine.env import VecRecSim
from tests.agents.tiny import K, L, run, tiny_scorer


def test_dqn_learns(sim, random_value):
    cfg = DQNConfig(lr=3e-3, gamma=0.5, n_step=1, batch_size=128, learning_starts=256, updates_per_step=2)
    agent = DQNAgent(tiny_scorer(sim), sim.num_items, K, L, cfg, total_steps=60, seed=0)
    out, value = run(agent, sim, 60)
    assert out["updates"] > 100 and out["updates_per_s"] > 0
    assert value > 1.3 * random_value, f"DQN {value:.3f} vs random {random_value:.3f}"


def test_dqn_n_step_and_hard_target_copy(sim):
    cfg = DQNConfig(lr=1e-3, gamma=0.9, n_step=3, batch_size=64, learning_starts=64, tau=1.0, target_every=5)
    agent = DQNAgent(tiny_scorer(sim), sim.num_items, K, L, cfg, total_steps=10, seed=0)
    run(agent, sim, 10)
    for _ in range(5 - agent.updates % 5):
        agent._update_once()
    for pt, po in zip(agent.target.parameters(), agent.online.parameters()):
        assert torch.equal(pt, po)  # tau = 1 every 5 updates: an exact copy
    batch, _, _ = agent.replay.sample(64, 0.5)
    assert (batch["n_steps"] <= 3).all() and (batch["n_steps"] >= 1).all()


def test_dqn_greedy_slate_is_topk_of_the_scorer_and_untied_head_starts_flat(sim):
    """The learned scale c and the dueling V(s) never change a ranking; the untied head starts at zero."""
    from recengine.agents.policy_base import histories
    from recengine.agents.scorer import untied_scorer
    from recengine.data import exclusion_csr
    from recengine.reference.policy import catalog_topk_reference

    scorer = tiny_scorer(sim, seed=4)
    agent = DQNAgent(scorer, sim.num_items, K, L, DQNConfig(), total_steps=1)
    with torch.no_grad():
        agent.online.value.weight.normal_()  # a non-trivial V(s) and scale
        agent.online.log_scale.fill_(1.3)
    obs = reset_env(VecRecSim(sim, 16), 9)
    hist = histories(obs)
    scorer.eval()
    Q, E, bias = scorer(hist)
    offsets, ids = exclusion_csr(hist)
    _, want = catalog_topk_reference(Q, E, K, bias=bias, exclude_offsets=offsets, exclude_ids=ids)
    assert torch.equal(agent.act(obs), want)
    flat = untied_scorer(scorer, bias_init=-2.0)
    Qf, Ef, bf = flat(hist)
    assert flat.encoder is scorer.encoder and torch.all(Ef == 0) and torch.all(bf == -2.0)
