"""Baseline policies: uniform random, most-popular, the supervised large model alone, and offline BPR MF.

None of them learns in the loop; they are the yardsticks the RL agents are compared with.
"""

from __future__ import annotations

import numpy as np
import torch

from recengine.agents.policy_base import Policy, histories, op
from recengine.data.exclusion import exclusion_csr
from recengine.nn.modes import eval_mode


class RandomPolicy(Policy):
    """k distinct items uniformly at random among those not in the user's history."""

    name = "random"

    def __init__(self, num_items: int, k: int, seed: int = 0):
        self.num_items, self.k = num_items, k
        self.generator = torch.Generator().manual_seed(seed)

    def act(self, obs, explore: bool = False) -> torch.Tensor:
        hist = histories(obs)
        scores = torch.rand(hist.shape[0], self.num_items, generator=self.generator)
        rows = torch.arange(hist.shape[0]).unsqueeze(1).expand_as(hist)
        valid = hist >= 0
        scores[rows[valid], hist[valid]] = -1.0  # seen items lose to every unseen one
        return scores.topk(self.k, dim=1).indices


class PopularityPolicy(Policy):
    """The k most-interacted-with items the user has not seen (catalog_topk with the log-counts as item bias)."""

    name = "popularity"

    def __init__(self, item_counts, k: int):
        counts = torch.as_tensor(item_counts, dtype=torch.float32)
        self.k = k
        self.bias = torch.log1p(counts).contiguous()
        self.E = torch.zeros(counts.numel(), 1)

    def act(self, obs, explore: bool = False) -> torch.Tensor:
        hist = histories(obs)
        offsets, ids = exclusion_csr(hist)
        Q = torch.zeros(hist.shape[0], 1)
        _, slate = op("catalog_topk")(Q, self.E, self.k, bias=self.bias, exclude_offsets=offsets, exclude_ids=ids)
        return slate


class SupervisedPolicy(Policy):
    """The large model alone: the supervised next-item encoder's top-k, the user's history excluded.

    `scorer` maps a (B, L) history matrix to (Q (B, D), E (N, D), bias (N,) or None): see
    `recengine.agents.scorer.Scorer`. `logged` (recengine.agents.logged_items.LoggedItems): also exclude each
    user's items in the logged training data, beyond the visible history (None: the visible history only).
    """

    name = "large-model"

    def __init__(self, scorer, k: int, *, logged=None):
        self.scorer, self.k, self.logged = scorer, k, logged

    @torch.no_grad()
    def act(self, obs, explore: bool = False) -> torch.Tensor:
        hist = histories(obs)
        with eval_mode(self.scorer):
            Q, E, bias = self.scorer(hist)
        offsets, ids = exclusion_csr(hist) if self.logged is None else self.logged.exclusion(obs, hist)
        _, slate = op("catalog_topk")(
            Q.contiguous(), E.contiguous(), self.k, bias=bias, exclude_offsets=offsets, exclude_ids=ids
        )
        return slate


class MatrixFactorizationPolicy(Policy):
    """The top-k of a matrix-factorisation model fitted offline (BPR): <p_u, q_i> + b_i for the session's user,
    the user's history excluded. It reads the simulator's "user_id" observation, so the simulator's users must
    be the data's users the model was fitted to."""

    name = "mf-bpr"

    def __init__(self, user_factors: torch.Tensor, item_factors: torch.Tensor, item_bias: torch.Tensor, k: int):
        self.P, self.E = user_factors.detach().contiguous(), item_factors.detach().contiguous()
        self.bias, self.k = item_bias.detach().contiguous(), k

    @torch.no_grad()
    def act(self, obs, explore: bool = False) -> torch.Tensor:
        if not isinstance(obs, dict) or "user_id" not in obs:
            raise ValueError("obs: MatrixFactorizationPolicy needs the simulator's dict observation with 'user_id'")
        hist = histories(obs)
        users = torch.as_tensor(np.asarray(obs["user_id"]), dtype=torch.int64).reshape(-1)
        if users.numel() and (users.min() < 0 or users.max() >= self.P.shape[0]):
            raise IndexError(
                f"obs['user_id']: ids must lie in [0, {self.P.shape[0]}) (the users the model was fitted to)"
            )
        offsets, ids = exclusion_csr(hist)
        _, slate = op("catalog_topk")(
            self.P[users].contiguous(), self.E, self.k, bias=self.bias, exclude_offsets=offsets, exclude_ids=ids
        )
        return slate
