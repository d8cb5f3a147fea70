"""The hybrid: the large model (SequenceEncoder + CatalogHead, pre-trained by supervised next-item training)
fine-tuned by RL in the simulator — the encoder is f(s) and its tied item table is E, so on the first step the
hybrid recommends exactly what the large model alone recommends, and RL then moves it towards clicks.

    result = pretrain(data, SASRecConfig(max_seconds=120))          # recengine.train.sasrec
    agent = make_hybrid(result.model, "reinforce", num_items=..., slate_size=..., history_len=...)
    train(agent, env, LoopConfig(...))                              # recengine.agents.loop
"""

from __future__ import annotations

import copy

from torch import nn

from recengine.agents.config import DQNConfig, ReinforceConfig
from recengine.agents.scorer import Scorer
from recengine.nn.modes import disable_dropout


def scorer_from_model(model: nn.Module, *, copy_weights: bool = True) -> Scorer:
    """A Scorer over a SequenceRecommender's encoder and head (a deep copy by default, so the large model
    itself stays as trained), dropout off."""
    model = copy.deepcopy(model) if copy_weights else model
    return Scorer(disable_dropout(model.encoder), model.head)


def pretrain(data, cfg=None, *, split=None, progress: bool = True, log=print):
    """Supervised next-item training of the large model (recengine.train.sasrec.train_sasrec)."""
    from recengine.train import SASRecConfig, train_sasrec

    return train_sasrec(data, cfg or SASRecConfig(), split=split, progress=progress, log=log)


def make_hybrid(
    model: nn.Module,
    kind: str,
    *,
    num_items: int,
    slate_size: int,
    history_len: int,
    dqn: DQNConfig | None = None,
    reinforce: ReinforceConfig | None = None,
    total_steps: int = 1,
    seed: int = 0,
):
    """A DQN or REINFORCE agent whose scorer starts as a copy of the pre-trained `model`."""
    scorer = scorer_from_model(model)
    if kind == "reinforce":
        from recengine.agents.reinforce import ReinforceAgent

        agent = ReinforceAgent(scorer, num_items, slate_size, reinforce or ReinforceConfig(lr=3e-4), seed=seed)
    elif kind == "dqn":
        from recengine.agents.dqn import DQNAgent

        agent = DQNAgent(scorer, num_items, slate_size, history_len, dqn or DQNConfig(lr=3e-4), total_steps, seed=seed)
    else:
        raise ValueError(f"kind: expected 'dqn' or 'reinforce', got {kind!r}")
    agent.name = f"hybrid-{kind}"
    return agent
