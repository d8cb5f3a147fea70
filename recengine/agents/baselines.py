"""Baseline policies: uniform random, most-popular, and the supervised large model alone.

None of them learns in the loop; they are the yardsticks the RL agents are compared with.
"""
from __future__ import annotations

import torch

from recengine.agents.policy_base import Policy, exclusion_csr, histories, op


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

    `scorer` maps a (B, L) history matrix to (Q (B, D), E (N, D), bias (N,) or None) — see
    `recengine.agents.encoder_adapter.EncoderScorer`.
    """

    name = "large-model"

    def __init__(self, scorer, k: int):
        self.scorer, self.k = scorer, k

    @torch.no_grad()
    def act(self, obs, explore: bool = False) -> torch.Tensor:

        hist = histories(obs)
        was_training = self.scorer.training
        self.scorer.eval()
        Q, E, bias = self.scorer(hist)
        self.scorer.train(was_training)
        offsets, ids = exclusion_csr(hist)
        _, slate = op("catalog_topk")(Q.contiguous(), E.contiguous(), self.k, bias=bias,
                                exclude_offsets=offsets, exclude_ids=ids)
        return slate
