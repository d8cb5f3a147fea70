"""The scoring network every encoder-based agent shares: θ(s, a) = <f(s), e_a> + b_a.

f is the large model's SequenceEncoder (recengine.nn) read at the user's most recent item; b is the
CatalogHead's item bias; E is, by default, the encoder's own (tied) item table `item_embeddings()` — exactly
what the supervised trainer fits, so a pre-trained encoder (the hybrid) arrives with the item vectors it was
trained against. A head with its own table (`CatalogHead(own_table=True)`) scores against that table instead
(DQN from scratch uses one, zero-initialised: see `untied_scorer`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from recengine.agents.config import EncoderConfig

if TYPE_CHECKING:
    from recengine.data.sequences import LeaveOneOut
    from recengine.train.config import SASRecConfig


class Scorer(nn.Module):
    """forward(hist (B, L) int64, -1 = empty, any PAD placement) -> (Q (B, D), E (N, D), bias (N,))."""

    def __init__(self, encoder: nn.Module, head: nn.Module):
        super().__init__()
        self.encoder, self.head = encoder, head
        if getattr(head, "bias", None) is None:
            raise ValueError("head: the CatalogHead must have an item bias (bias=True)")

    def item_table(self) -> torch.Tensor:
        own = getattr(self.head, "weight", None)
        return own if own is not None else self.encoder.item_embeddings()

    def forward(self, hist: torch.Tensor):
        return self.encoder.last_state(hist), self.item_table(), self.head.bias

    def topk(self, hist: torch.Tensor, k: int, *, exclude_seen: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """(scores (B, k), item ids (B, k)) of the k best items for each history `hist` (B, L) (PAD_ID anywhere),
        the items of the history excluded when `exclude_seen`: the greedy slate every encoder-based agent shows.

        It compiles whole and exports: the exclusion list has a size that depends on the data, which
        torch.export traces as is and torch.compile(fullgraph=True) traces with
        ``torch._dynamo.config.capture_dynamic_output_shape_ops = True``."""
        from recengine.data.exclusion import exclusion_csr
        from recengine.ops import catalog_topk

        Q, E, bias = self(hist)
        offsets, ids = exclusion_csr(hist) if exclude_seen else (None, None)
        return catalog_topk(Q, E, k, bias=bias, exclude_offsets=offsets, exclude_ids=ids)

    @property
    def dim(self) -> int:
        return self.encoder.dim


def untied_scorer(scorer: Scorer, bias_init: float | torch.Tensor = 0.0) -> Scorer:
    """The same encoder with a new head holding its own item table (zero) and bias: `bias_init`, one value for
    every item or a (N,) tensor of per-item values (e.g. a popularity prior: see agents.entries.dqn.popularity_prior).

    For value learning from scratch: with the tied table, a fresh encoder gives every item a random logit of
    order 1, and the top-k of 1682 such values is pure noise that no update corrects until the item is shown;
    with zeros, an item nobody has shown scores alike (below the ones learnt to be clicked when `bias_init` < 0,
    "pessimism under uncertainty"), and the ranking is what was learnt. The price: Q's gradient with respect to
    the state, c · e_a, is zero at the start, so the encoder learns nothing until the table has grown, and the
    table shares nothing between items of the same genres (see CompareConfig.dqn_item_table)."""
    from recengine.nn import CatalogHead

    head = CatalogHead(scorer.head.num_items, scorer.dim, own_table=True)
    with torch.no_grad():
        head.weight.zero_()
        if torch.is_tensor(bias_init):
            if bias_init.shape != head.bias.shape:
                raise ValueError(f"bias_init: expected shape {tuple(head.bias.shape)}, got {tuple(bias_init.shape)}")
            head.bias.copy_(bias_init)
        else:
            head.bias.fill_(bias_init)
    return Scorer(scorer.encoder, head)


def fresh_scorer(data, sasrec: SASRecConfig, encoder: EncoderConfig | None = None, *, seed: int) -> Scorer:
    """A randomly initialised encoder + tied head for `data` (RL from scratch): the large model's architecture
    `sasrec`, or the sizes in `encoder` (same item side features), dropout off.

    The weights are those of torch's global generator seeded with seed + 17 (the comparison's figures were
    produced that way and stay reproducible for a seed), drawn inside ``torch.random.fork_rng``: the caller's
    global RNG state is left as it was."""
    from dataclasses import replace

    from recengine.nn.modes import disable_dropout
    from recengine.train.sasrec import model_from_data

    if encoder is not None:
        sasrec = replace(
            sasrec, dim=encoder.dim, num_layers=encoder.num_layers, num_heads=encoder.num_heads, max_len=encoder.max_len
        )
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed + 17)  # the CPU generator fork_rng restores
        model = model_from_data(data, sasrec)
    return Scorer(disable_dropout(model.encoder), model.head)


def leave_one_out_metrics(scorer: Scorer, split: LeaveOneOut) -> dict[str, float]:
    """HR@10 / NDCG@10 of the scorer's encoder and head on the split's test targets (full ranking, seen items
    excluded): how well what an agent learnt predicts real held-out clicks."""
    from recengine.eval.metrics import HR_AT_10, NDCG_AT_10
    from recengine.eval.offline import evaluate_model
    from recengine.nn.sequence_recommender import SequenceRecommender

    m = evaluate_model(SequenceRecommender(scorer.encoder, scorer.head, use_users=False), split, "test")
    return {HR_AT_10: m[HR_AT_10], NDCG_AT_10: m[NDCG_AT_10]}


def new_scorer(num_items: int, cfg: EncoderConfig, seed: int = 0, **encoder_kwargs) -> Scorer:
    """A freshly initialised SequenceEncoder + tied CatalogHead (`encoder_kwargs`: side-feature tables): the
    weights torch's global generator seeded with `seed` draws, inside ``torch.random.fork_rng`` (the caller's
    global RNG state is left as it was)."""
    from recengine.nn import CatalogHead
    from recengine.nn.sequence_encoder import encoder_from_config

    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)  # the CPU generator fork_rng restores
        encoder = encoder_from_config(num_items, cfg, **encoder_kwargs)
        return Scorer(encoder, CatalogHead(num_items, cfg.dim))
