"""What every recommendation policy in the feedback loop has in common.

A policy sees a batch of observations (one per simulated user), returns a slate of k item ids per user, may
store what happened and may learn from it:

    slates = policy.act(obs, explore=True)                         # (B, k) int64
    policy.observe(step)                                           # store a loop.Step (learning agents only)
    stats = policy.update()                                        # 0..n gradient steps; {} when nothing learnt

`obs` is the simulator's observation; `histories(obs)` turns it into the (B, L) item-id matrix (most recent
last, recengine.padding.PAD_ID = empty slot) that every policy here reads.
"""

from __future__ import annotations

import numpy as np
import torch


def op(name: str):
    """recengine.ops.<name> (looked up at call time, so tests may substitute a reference)."""
    import recengine.ops as ops

    return getattr(ops, name)


def histories(obs) -> torch.Tensor:
    """The (B, L) int64 history matrix (most recent item last, PAD_ID = empty) of a simulator observation.

    Accepts the simulator's dict observation (key "history"), or the matrix itself (NumPy or torch).
    """
    if isinstance(obs, dict):
        obs = obs["history"]
    h = torch.as_tensor(np.asarray(obs) if not isinstance(obs, torch.Tensor) else obs)
    if h.dim() == 1:
        h = h.unsqueeze(0)
    return h.to(torch.int64)


class Policy:
    """Base class: a non-learning policy (observe / update do nothing)."""

    name: str = "policy"
    learns: bool = False

    def act(self, obs, explore: bool = False) -> torch.Tensor:
        raise NotImplementedError

    def observe(self, step) -> None:
        return None

    def update(self) -> dict[str, float]:
        return {}

    def num_updates(self) -> int:
        return 0
