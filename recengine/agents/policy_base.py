"""The one policy interface: every recommendation policy, learning agent or logging policy, has this shape.

A policy sees a batch of observations (one per simulated user), returns a slate of k item ids per user, may
know the probability of a slate, may store what happened and may learn from it:

    slates = policy.act(obs, explore=True)                         # (B, k) int64, torch or NumPy
    probs = policy.prob(obs, slates)                               # (B,) float64 (stochastic policies for OPE)
    policy.observe(step)                                           # store a rollout.Step (learning agents only)
    stats = policy.update()                                        # 0..n gradient steps; {} when nothing learnt

The rollout loop (recengine.agents.rollout) is the one caller of act/observe/update. Policies that sample with
NumPy (recengine.judging.slate_policies) also take `act(obs, explore, rng=generator)`: the loop hands them the
generator it was given.

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
    """Base class of every policy: a non-learning one by default (observe / update do nothing).

    Subclasses implement `act`; stochastic policies used by off-policy evaluation also implement `prob`, and
    learners `observe`, `update` and `num_updates` (with `learns = True`). `deterministic` says that `act` gives
    the same slate for the same observation, so an estimator samples it once.
    """

    name: str = "policy"
    learns: bool = False
    deterministic: bool = False

    def act(self, obs, explore: bool = False) -> torch.Tensor:
        """(B, k) int64 slates for the batch of observations `obs`; `explore` asks a learner for its exploring
        behaviour (a fixed stochastic policy samples from its distribution either way)."""
        raise NotImplementedError

    def prob(self, obs, slates) -> np.ndarray:
        """(B,) float64 probability that `act` returns exactly these ordered slates (policies that know it)."""
        raise NotImplementedError(f"{type(self).__name__} does not know the probabilities of its slates")

    def observe(self, step) -> None:
        return None

    def update(self) -> dict[str, float]:
        return {}

    def num_updates(self) -> int:
        return 0
