"""dqn: double DQN from scratch over a small fresh encoder, its item bias starting at a popularity prior.

The item table is the encoder's own ("tied", the default) or a separate zero table ("own"): see
CompareConfig.dqn_item_table.
"""

import numpy as np
import torch

from recengine.agents.dqn import DQNAgent
from recengine.agents.entry import AgentEntry, BuiltAgent, CompareSetup
from recengine.agents.scorer import fresh_scorer, leave_one_out_metrics, untied_scorer


def popularity_prior(item_counts: np.ndarray, top: float, scale: float) -> torch.Tensor:
    """The popularity prior of DQN's item bias: top + scale · (log(1 + n_a) − max_b log(1 + n_b)) for item a,
    the log-counts the popularity baseline ranks by, shifted so the most popular item starts at `top`."""
    log_counts = torch.log1p(torch.as_tensor(np.asarray(item_counts), dtype=torch.float32))
    return (top + scale * (log_counts - log_counts.max())).contiguous()


def build(setup: CompareSetup, seed: int) -> BuiltAgent:
    s = setup.settings
    if s.dqn_item_table not in ("tied", "own"):
        raise ValueError(f"dqn_item_table: expected 'tied' or 'own', got {s.dqn_item_table!r}")
    scorer = fresh_scorer(setup.data, setup.sasrec, s.dqn_encoder, seed=seed)
    prior = popularity_prior(setup.item_counts, s.dqn_bias_init, s.dqn_popularity_prior)
    if s.dqn_item_table == "own":
        scorer = untied_scorer(scorer, prior)
    else:
        with torch.no_grad():
            scorer.head.bias.copy_(prior)
    agent = DQNAgent(
        scorer, setup.num_items, setup.slate_size, s.history_len, s.dqn, s.rl_steps.get("dqn", 0), seed=seed
    )
    return BuiltAgent(agent, lambda: leave_one_out_metrics(scorer, setup.split))


ENTRY = AgentEntry("dqn", build)
