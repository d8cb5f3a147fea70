"""The scoring network every encoder-based agent shares: θ(s, a) = <f(s), e_a> + b_a.

f is the large model's SequenceEncoder (recengine.nn) read at the user's most recent item; E is the encoder's
own (tied) item table `item_embeddings()` and b the CatalogHead's item bias — exactly what the supervised
trainer fits, so a pre-trained encoder (the hybrid) arrives with the item vectors it was trained against.
"""
from __future__ import annotations

import torch
from torch import nn

from recengine.agents.config import EncoderConfig


class Scorer(nn.Module):
    """forward(hist (B, L) int64, -1 = empty, any PAD placement) -> (Q (B, D), E (N, D), bias (N,))."""

    def __init__(self, encoder: nn.Module, head: nn.Module):
        super().__init__()
        self.encoder, self.head = encoder, head
        if getattr(head, "bias", None) is None:
            raise ValueError("head: the CatalogHead must have an item bias (bias=True)")

    def forward(self, hist: torch.Tensor):
        return self.encoder.last_state(hist), self.encoder.item_embeddings(), self.head.bias

    @property
    def dim(self) -> int:
        return self.encoder.dim


def new_scorer(num_items: int, cfg: EncoderConfig, seed: int = 0, **encoder_kwargs) -> Scorer:
    """A freshly initialised SequenceEncoder + tied CatalogHead (`encoder_kwargs`: side-feature tables)."""
    from recengine.nn import CatalogHead, SequenceEncoder

    torch.manual_seed(seed)
    encoder = SequenceEncoder(num_items, cfg.dim, cfg.max_len, num_layers=cfg.num_layers, num_heads=cfg.num_heads,
                              dropout=cfg.dropout, **encoder_kwargs)
    return Scorer(encoder, CatalogHead(num_items, cfg.dim))
