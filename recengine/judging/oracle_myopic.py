"""The myopic oracle: a yardstick that reads the simulator's own model and shows, at every step, the slate with the
highest exact probability of a click on that step. It is an upper bound on what any policy can get from one step
without planning, not a deployable agent (no real recommender knows its users' true state).

Why the top k items by odds are the exact optimum: both simulators choose from a slate by a multinomial logit with a
no-click option, so the probability of a click on a slate s is

    P(click | s) = W(s) / (1 + W(s)),      W(s) = sum over j in s of w_j,      w_j = exp(v_j - v_0)

where w_j (``env.choice_weights()``) depends on the user's state (response-model state or latent preferences,
fatigue, consumed or already-clicked items) but not on which other items share the slate. P(click | s) grows with
W(s), and W(s) is a sum of per-item terms, so the k items with the largest w_j maximise it; the order within the
slate does not change any probability. (Were the slate's items to interact, e.g. fatigue from the shown slate
applied before the choice, greedy top-k would no longer be exact; in both simulators fatigue from a slate acts from
the next step on.) ``tests/judging/test_oracle_myopic.py`` checks this against every slate of a tiny catalog.
"""

from __future__ import annotations

import numpy as np
import torch

from recengine.agents.policy_base import Policy

__all__ = ["MyopicOracle", "check_bound", "top_slates"]


def top_slates(weights: np.ndarray, k: int) -> np.ndarray:
    """(B, k) int64 the k items with the largest odds in each row of ``weights`` (B, N), best first."""
    w = torch.from_numpy(np.ascontiguousarray(weights))
    return w.topk(k, dim=1).indices.numpy().astype(np.int64)


def check_bound(env, obs) -> None:
    """Raise ValueError unless ``obs`` is the current observation of ``env`` (an oracle reads the state of the
    environment it was built on, so it must act on that environment's observations)."""
    users = np.asarray(obs["user_id"] if isinstance(obs, dict) else obs).reshape(-1)
    if users.shape != (env.num_envs,) or not np.array_equal(users, env.current_users):
        raise ValueError("obs: an oracle acts only on the observations of the environment it was built on")


class MyopicOracle(Policy):
    """Each slate maximises the exact probability of a click on this step (module docstring), read from ``env``,
    the vectorised simulator whose sessions it acts in (``recengine.env.SequentialVecSim`` or ``VecRecSim``).
    A yardstick that knows the users' true state, never an agent."""

    name = "oracle-myopic"
    deterministic = True

    def __init__(self, env):
        self.env = env
        self.k = int(env.slate_size)

    def act(self, obs, explore: bool = False) -> torch.Tensor:
        check_bound(self.env, obs)
        return torch.from_numpy(top_slates(self.env.choice_weights(), self.k))
